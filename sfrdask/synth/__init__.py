"""The synthetic SDSS survey: sfrdask's embedded default data set."""

from sfrdask.synth.population import SynthParams
from sfrdask.synth.survey import CUBE_NAME, make_survey

__all__ = ["CUBE_NAME", "SynthParams", "make_survey"]
