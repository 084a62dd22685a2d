"""Tables as markdown, for the ``.md`` files beside every ``.csv`` a stage writes."""

from __future__ import annotations

import numpy as np
import pandas as pd


def markdown(table: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
    """A GitHub-style markdown table; floats to ``digits`` decimals, missing values as ``-``."""
    t = table.reset_index() if index else table

    def fmt(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if isinstance(v, float | np.floating):
            return f"{v:.{digits}f}"
        return str(v)

    cols = [str(c) for c in t.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in t.itertuples(index=False)]
    return "\n".join(lines) + "\n"
