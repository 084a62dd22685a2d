"""The synthetic SDSS survey: sfrdask's embedded default data set."""

from sfrdask.synthetic.population import SynthParams
from sfrdask.synthetic.survey import CUBE_NAME, make_survey

__all__ = ["CUBE_NAME", "SynthParams", "make_survey"]
