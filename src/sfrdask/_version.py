"""The package version, in a leaf module: modules that record it (run manifests, store markers,
catalogue headers) import it from here, not from the package root, which imports the API."""

__version__ = "0.3.0"
