"""``sfrdask models``, ``train`` and ``evaluate`` from the command line."""

from __future__ import annotations

from sfrdask.cli import main
from tests.conftest import md_rows


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in (
        "early-fusion",
        "intermediate-fusion",
        "late-fusion",
        "cross-attention",
        "contrastive",
        "tree-both",
    ):
        assert name in out


def test_train_then_evaluate(store, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["train", "--store", str(store), "--model", "tree-spectrum,spectrum-hybrid", "--image-zoom", "3"]
    assert (
        main([*args, "--spectrum-zoom", "3", "--epochs", "2", "--batch-size", "16", "--out", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert {"tree-spectrum", "spectrum-hybrid"} <= {row[0] for row in md_rows(text)}
    assert main(["evaluate", str(out / "spectrum-hybrid" / "spectrum3-AVG"), "--store", str(store)]) == 0
    assert "R^2" in capsys.readouterr().out


def test_bad_requests_exit_2_with_one_line(store, tmp_path, capsys):
    cases = [
        (["--model", "transformer", "--spectrum-zoom", "3"], "unknown model 'transformer'; known SFR mod"),
        (
            ["--model", "image-resnet", "--image-zoom", "3", "--stem", "none"],
            "needs images of at least 16 px",
        ),
        (["--model", "early-fusion", "--image-zoom", "2", "--spectrum-zoom", "3"], "run `sfrdask pca`"),
    ]
    for extra, message in cases:  # in this process (the CLI's own exit path is tested in test_cli)
        assert main(["train", "--store", str(store), "--out", str(tmp_path), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
