"""Code a reader can take in (issue 36): no function of sfrdask over 80 lines, and the stage modules
short, their work in the modules below them (predict's in :mod:`sfrdask.trained.prediction`)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sfrdask"
MAX_FUNCTION, MAX_STAGE = 80, 150


def _long_functions(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION:
                    out.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_is_over_80_lines():
    assert not _long_functions(PACKAGE)


def test_the_check_finds_a_long_function(tmp_path):
    (tmp_path / "long.py").write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION)
    assert _long_functions(tmp_path) == [f"long.py:1 f ({MAX_FUNCTION + 1} lines)"]


def test_the_predict_stage_is_short():
    assert len((PACKAGE / "stages" / "predict.py").read_text().splitlines()) <= MAX_STAGE
