"""Tables as markdown, for the ``.md`` files beside every ``.csv`` a stage writes: pandas'
``to_markdown`` (tabulate's "pipe" layout), with the cells formatted here.

>>> import pandas as pd
>>> print(markdown(pd.DataFrame({"model": ["gbt", "cnn"], "r2": [0.71234, float("nan")]})), end="")
| model   |    r2 |
|:--------|------:|
| gbt     | 0.712 |
| cnn     |     - |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v == "" or (isinstance(v, float | np.floating) and np.isnan(v))


def markdown(
    table: pd.DataFrame,
    digits: int = 3,
    index: bool = False,
    formats: Mapping[str, str | Callable[[Any], str]] | None = None,
) -> str:
    """A GitHub-style markdown table: floats to ``digits`` decimals unless ``formats`` gives a
    column its own (a format spec such as ``".3g"``, or a function), missing values as ``-``;
    numeric columns aligned right."""
    t = table.reset_index() if index else table
    formats = formats or {}

    def cell(v: Any, col: str) -> str:
        if _missing(v):
            return "-"
        f = formats.get(col)
        if callable(f):
            return f(v)
        if f:
            return format(v, f)
        if isinstance(v, float | np.floating):
            return f"{v:.{digits}f}"
        return str(v)

    text = pd.DataFrame({str(c): [cell(v, c) for v in t[c]] for c in t.columns})
    align = ["right" if pd.api.types.is_numeric_dtype(t[c]) else "left" for c in t.columns]
    kw = {"colalign": align} if len(t) else {}  # tabulate aligns no columns of an empty table
    return text.to_markdown(index=False, disable_numparse=True, **kw) + "\n"
