"""rnnbench's own small JSON files, each naming its `kind` and `api_version`, read or refused in one line.

The history marker (`analysis.columnar`) and the night's verdicts document
(`analysis.verdicts`) are read by several commands; a file that is missing,
unreadable, of another kind or of an `api_version` this rnnbench cannot read
is refused here with a `UsageError` whose one line names the file, so every
reader words its refusal alike. (Run documents have a typed reader of their
own, `sweep.records.RunDocument`.)
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from rnnbench.errors import UsageError

__all__ = ["read_kind_json"]


def read_kind_json(path: Path, kind: str, api_version: int, what: str, missing: str = "") -> dict[str, Any]:
    """The JSON object in `path` when its `kind` and `api_version` are these; else a UsageError naming
    `path` and `what` it should have been (`missing`: what to do when the file does not exist)."""
    try:
        raw = gzip.decompress(Path(path).read_bytes()) if Path(path).suffix == ".gz" else Path(path).read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what}{f' ({missing})' if missing else ''}") from None
    except (OSError, ValueError, EOFError) as exc:  # EOFError: a truncated .gz
        raise UsageError(f"{path}: not a readable {what} ({str(exc).splitlines()[0][:100]})") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise UsageError(f"{path}: not an rnnbench {what} (kind {kind!r})")
    if doc.get("api_version") != api_version:
        raise UsageError(f"{path}: {what} api_version {doc.get('api_version')!r} is not readable here")
    return doc
