"""The record of finished trainings: one JSON line each, rewritten whole and atomically per addition,
so a study stopped at any moment resumes with every finished training once and no half line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sfrdask.io.atomic import write_text
from sfrdask.resolution.grid import Training


def training_of(row: dict[str, Any]) -> Training:
    """The training a record row describes (rows written before seeds or stems were recorded: seed
    0, the configured stem)."""
    zi, zs = row.get("image_zoom"), row.get("spectrum_zoom")
    return Training(row["model"], None if zi is None else int(zi), None if zs is None else int(zs),
                    int(row.get("seed", 0)), row.get("setup", ""), row.get("stem", ""))  # fmt: skip


class Record:
    """``done.jsonl`` in a study's work directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[Training, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.rows[training_of(row)] = row  # a repeated training: the last one counts

    def __contains__(self, t: Training) -> bool:
        return t in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: dict[str, Any]) -> None:
        """Record one finished training (replacing an earlier row of the same training)."""
        self.rows[training_of(row)] = row
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows.values()))
