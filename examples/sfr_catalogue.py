"""From a survey to an SFR catalogue in Python: the stages of ``make demo``, on a LocalCluster.

Run it as a script (``python examples/sfr_catalogue.py``); the test suite does, in a temporary
directory. The ``__main__`` guard matters: Dask's worker processes import this file again.
"""

import sfrdask

if __name__ == "__main__":
    with sfrdask.cluster("local") as client:  # prints the dashboard link
        survey = sfrdask.synth("survey", objects=1000, seed=1, flag0_fraction=0.55, client=client)
        store = sfrdask.ingest(survey.cube, "store.zarr", catalog="survey", image_zooms=[2],
                               spectrum_zooms=[2], client=client).store  # 16 px, 1155 samples
        sfrdask.preprocess(store, "plots", client=client)  # selection, deblending, PCA (training split)
        trained = sfrdask.train(store, "gbt-both", image_zoom=2, spectrum_zoom=2, out="runs", client=client)
        cat = sfrdask.predict(trained.runs[0]["run_dir"], "sfr.fits", cube=survey.cube, catalog="survey",
                              client=client)
    print(trained.runs[0]["metrics"])  # test-split R^2, RMSE, MAE
    print(cat.catalogue, cat.rows, "rows")  # a row per spectrum: MEDIAN, P16/P84, P2P5/P97P5 of log SFR
