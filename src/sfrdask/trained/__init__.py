"""Trained runs, from fitting to the catalogue: each family's fit, load and predict
(:mod:`~sfrdask.trained.families`), a run read back and applied to raw objects
(:mod:`~sfrdask.trained.inference`), a registered model trained, scored and calibrated end to end
(:mod:`~sfrdask.trained.modelling`), conformal intervals (:mod:`~sfrdask.trained.calibration`),
attributions of a network (:mod:`~sfrdask.trained.attributions`) and the SFR catalogue of a cube
(:mod:`~sfrdask.trained.prediction`).

Nothing is imported here: each module loads torch, MAPIE or captum only when used.
"""
