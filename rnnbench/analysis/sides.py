"""Finding the two sides of a comparison: a result file, a folder, or a commit prefix looked up in the results store.

This module owns turning what a person types after `rnnbench compare` into
the rows of one side; bad input is a `UsageError` naming what was not found.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from rnnbench.analysis.frame import load
from rnnbench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_side"]

_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")


def load_side(spec: str, store: str | Path = "results") -> pd.DataFrame:
    """A result file, a directory, or a commit prefix of documents in `store` -> its rows."""
    path = Path(spec)
    if path.exists():
        frame = load([path])
        if frame.empty:
            raise UsageError(f"no rnnbench or asv results in {spec}")
        return frame
    if not _COMMIT.match(spec):
        raise UsageError(f"{spec!r} is not a file, a directory or a commit prefix")
    if not Path(store).is_dir():
        raise UsageError(
            f"{spec!r} is not a file or directory, and there is no results store {store} to look up a commit in"
        )
    frame = load([store])
    commits = frame["commit"].fillna("")
    hit = frame[commits.str.lower().str.startswith(spec.lower())]
    found = sorted(set(hit["commit"]))
    if not found:
        raise UsageError(f"no results for commit {spec!r} under {store}")
    if len(found) > 1:
        raise UsageError(f"commit prefix {spec!r} is ambiguous under {store}: {', '.join(c[:12] for c in found)}")
    return hit
