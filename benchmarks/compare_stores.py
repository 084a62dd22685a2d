"""Two zarr stores compared exactly: every array (values bit for bit, NaN equal to NaN; dtype and
shape) and every attribute; for arrays that differ, how many objects (rows) differ and which.

    python benchmarks/compare_stores.py OLD.zarr NEW.zarr

What it is for: telling whether two preparations give a training the same inputs, e.g. before a
record of trainings made on one is counted for the other (docs/benchmarks.md, "How it ran").
Exit status 0 when nothing but the groups' provenance attributes differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

PROVENANCE = {"source", "source_mtime", "created", "catalog"}  # where and when, not what


def arrays(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, arr in group.arrays():
        yield prefix + name, arr
    for name, sub in group.groups():
        yield from arrays(sub, f"{prefix}{name}/")


def groups(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    yield prefix or "/", group
    for name, sub in group.groups():
        yield from groups(sub, f"{prefix}{name}/")


def _equal(x: Any, y: Any) -> bool:
    x, y = np.asarray(x), np.asarray(y)
    return np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")


def compare(old: Path, new: Path) -> list[str]:
    """One line per difference."""
    a, b = zarr.open_group(old, mode="r"), zarr.open_group(new, mode="r")
    out = []
    xa, xb = dict(arrays(a)), dict(arrays(b))
    out += [f"{k}: only in {old if k in xa else new}" for k in sorted(set(xa) ^ set(xb))]
    for k in sorted(set(xa) & set(xb)):
        x, y = xa[k][...], xb[k][...]
        if dict(xa[k].attrs) != dict(xb[k].attrs):
            out.append(f"{k}: attributes differ")
        if x.shape != y.shape or x.dtype != y.dtype:
            out.append(f"{k}: {x.dtype}{x.shape} against {y.dtype}{y.shape}")
        elif not _equal(x, y):
            rows = np.flatnonzero([not _equal(u, v) for u, v in zip(x, y, strict=True)])
            out.append(f"{k}: {rows.size} rows differ, e.g. {rows[:8].tolist()}")
    ga, gb = dict(groups(a)), dict(groups(b))
    for k in sorted(set(ga) & set(gb)):
        da, db = dict(ga[k].attrs), dict(gb[k].attrs)
        keys = sorted(
            k2 for k2 in set(da) | set(db) if k2 not in PROVENANCE and _dump(da.get(k2)) != _dump(db.get(k2))
        )
        if keys:
            out.append(f"group {k}: attributes {', '.join(keys)} differ")
    return out


def _dump(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    args = p.parse_args()
    lines = compare(args.old, args.new)
    n = sum(1 for _ in arrays(zarr.open_group(args.old, mode="r")))
    print(f"{n} arrays in {args.old}; {len(lines)} differences" + (":" if lines else ""))
    print("\n".join(f"  {line}" for line in lines))
    return 1 if lines else 0


if __name__ == "__main__":
    raise SystemExit(main())
