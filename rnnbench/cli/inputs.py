"""Reading the result files a command was given, in the CLI's voice.

Files that are not results are skipped with a one-line warning each; but when
nothing readable is left, the command fails with one line that says why
(the first skipped file's reason), instead of a warning per file followed by
an error. Malformed records are warned about per file: the first few, then
one line with how many more (a hand-edited document must not print a line
per record).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rnnbench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_results", "warnings_or_reason"]


@contextlib.contextmanager
def warnings_or_reason() -> Iterator[None]:
    """Collect warnings raised inside; on a `UsageError`, fold the first into its message, else print each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except UsageError as exc:
            reasons = [str(w.message) for w in caught]
            if not reasons:
                raise
            more = f"; {len(reasons) - 1} more file(s) skipped" if len(reasons) > 1 else ""
            raise UsageError(f"{exc} (skipped {reasons[0]}{more})".replace("\n", " ")) from None
    for line in _folded([str(w.message) for w in caught]):
        print(f"rnnbench: warning: {line}", file=sys.stderr)


RECORD_WARNINGS_SHOWN = 3  # malformed records named per file before the rest are counted


def _folded(messages: Sequence[str]) -> list[str]:
    """The warnings to print: at most `RECORD_WARNINGS_SHOWN` malformed-record lines per file, then a count."""
    lines: list[str] = []
    per_file: dict[str, int] = {}
    for message in messages:
        head, sep, _ = message.partition(": record ")
        if not sep:
            lines.append(message)
            continue
        per_file[head] = per_file.get(head, 0) + 1
        if per_file[head] <= RECORD_WARNINGS_SHOWN:
            lines.append(message)
    for head, count in per_file.items():
        if count > RECORD_WARNINGS_SHOWN:
            lines.append(f"{head}: {count - RECORD_WARNINGS_SHOWN} more malformed records (left out)")
    return lines


def load_results(paths: Sequence[str], last: int | None = None, samples: bool = True) -> pd.DataFrame:
    """Every result under `paths` (default `results/`) as one frame, or each machine's `last` N runs
    (a history's samples left unread with `samples=False`); UsageError when there is none."""
    from rnnbench.analysis.frame import load

    with warnings_or_reason():
        frame = load(list(paths) or None, last=last, samples=samples)
        if frame.empty:
            raise UsageError(f"no rnnbench or asv results in {', '.join(paths or ['results'])}")
    return frame
