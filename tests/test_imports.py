"""Where sfrdask imports inside functions, and why (docs/architecture.md, "Imports").

Modules on the start-up path (the command line, the Python API, run files and the stage modules
they load to parse arguments and check inputs) import the work's modules inside ``run``: ``sfrdask
STAGE --help`` and a refused input return before any of it loads. Anywhere else an import inside a
function must say why, in a comment on it or on the imports just above it (a heavy library loaded
only on the path that needs it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "sfrdask"
START_UP = {"__init__.py", "__main__.py", "cli.py", "api.py", "pipeline.py", "runtime.py", "clusters.py"}


def _on_start_up_path(path: Path) -> bool:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] == "stages" or str(rel) in START_UP


def _unexplained(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    out = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Import | ast.ImportFrom):
                continue
            i = sub.lineno - 1  # the import, then the imports and comments just above it
            block = [lines[i]]
            while i > 0 and lines[i - 1].strip().startswith(("import ", "from ", "#")):
                i -= 1
                block.append(lines[i])
            if not any("#" in line for line in block):
                out.append(
                    f"{path.relative_to(PACKAGE.parent)}:{sub.lineno}: {lines[sub.lineno - 1].strip()}"
                )
    return out


def test_imports_inside_functions_say_why():
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if not _on_start_up_path(p)]
    assert len(files) > 50
    bad = [line for p in files for line in _unexplained(p)]
    assert not bad, "imports inside functions without a reason:\n" + "\n".join(bad)


def test_the_command_line_starts_without_the_heavy_libraries():
    """What the deferred imports buy: parsing a stage's arguments loads no torch, matplotlib,
    MAPIE or captum (seconds of start-up on a cluster's shared file system)."""
    code = (
        "import sys; from sfrdask.cli import build_parser; "
        "[build_parser(c) for c in ('synth', 'ingest', 'train', 'evaluate', 'predict', 'explain', 'study')]; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'mapie', 'captum') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
