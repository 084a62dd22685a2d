"""The stage layer: one module per stage, each with a frozen ``Params`` whose tunable defaults come
from ``sfrdask.yaml`` (dask.config) and ``run(client, params) -> Result``, where ``client`` is the
Dask cluster to run on (``None``: Dask's in-process scheduler). The CLI, the run file and the
Python API all call these.

Stages here so far: :mod:`sfrdask.stages.predict`.
"""
