"""One name for a zoom level (issue 36): ``zoom`` everywhere (``--image-zoom``, ``--image-zooms``,
``zooms:`` in run files). The old spellings (``--image-levels``, ``image_levels=``, ``levels:``,
``study.curve-levels``) keep working for one release and say what to use instead."""

from __future__ import annotations

import dask
import pytest
import yaml

import sfrdask
from sfrdask import config
from sfrdask.cli import build_parser
from sfrdask.config import ConfigError
from sfrdask.errors import SfrdaskError
from sfrdask.pipeline import load_run_config, stage_params
from sfrdask.stages import get_stage


def test_the_old_option_still_parses_and_names_the_new_one(capsys):
    args = build_parser("study").parse_args(
        ["study", "--cube", "c.h5", "--catalog", "cat", "--image-levels", "2,3", "--curve-levels", "3"]
    )
    assert args.image_zooms == (2, 3) and args.curve_zooms == (3,)
    err = capsys.readouterr().err
    assert "--image-levels is deprecated" in err and "use --image-zooms" in err
    assert "--curve-levels is deprecated" in err
    with pytest.raises(SystemExit):
        build_parser("study").parse_args(["study", "--help"])
    help_text = capsys.readouterr().out
    assert "--image-zooms" in help_text and "--image-levels" not in help_text  # hidden from --help


def test_the_old_keyword_warns_and_is_read(tmp_path):
    with pytest.warns(FutureWarning, match=r"image_levels is deprecated .*use image_zooms"):
        with pytest.raises(SfrdaskError, match="no such file"):  # the keyword was taken; the input is checked
            sfrdask.study(tmp_path / "none.h5", tmp_path, tmp_path / "s", image_levels=(3,))
    with pytest.raises(TypeError, match="same setting"):
        sfrdask.study(tmp_path / "none.h5", tmp_path, image_levels=(3,), image_zooms=(3,))


def test_a_run_file_with_levels_warns_and_runs_as_with_zooms(tmp_path):
    cfg = {"input": {"synthetic": {"objects": 8}}, "levels": {"image": [2], "spectrum": [3]},
           "study": {"image-levels": [2]}}  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.warns(FutureWarning) as seen:
        loaded = load_run_config(path)
        params = stage_params(loaded, tmp_path / "run")
    said = " ".join(str(w.message) for w in seen)
    assert "'levels:' is deprecated" in said and "use 'zooms:'" in said
    assert "study: image-levels is deprecated" in said and "use image-zooms" in said
    assert params["ingest"].image_zooms == (2,) and params["ingest"].spectrum_zooms == (3,)
    assert params["study"].image_zooms == (2,)
    path.write_text(yaml.safe_dump({**cfg, "zooms": {"image": [2]}}))
    with pytest.raises(ConfigError, match="'levels' is an old spelling of 'zooms'"):
        load_run_config(path)


def test_the_old_setting_key_is_read_with_a_warning():
    with dask.config.set({"sfrdask.study.curve-levels": [3]}):
        config.validate()  # not an unknown key
        with pytest.warns(FutureWarning, match="sfrdask.study.curve-levels is deprecated"):
            assert get_stage("study").params(cube="c.h5", catalog="cat").curve_zooms == (3,)
    with dask.config.set({"sfrdask.study.curve-levels": "three"}):
        with pytest.raises(ConfigError, match="curve-levels"):
            config.validate()  # its type is checked as the new key's
