"""The night's verdicts document (`verdicts.json`): every judged case of one night, from one judge.

This module owns building the document the nightly publishes beside its
landing page, and reading it back. A night is judged two ways:

- paired, when it has a BASE (the previous night's commit and environment
  re-measured tonight, interleaved with NEW by `ab`): every case of NEW is
  judged against BASE by `rnnbench.judge.cases.judge_records`, and that
  verdict is the one published;
- from history, always: the night's value of each case against the spread of
  that machine's previous N nights (`rnnbench.analysis.history.baseline`, the
  rule of `rnnbench.judge.published.judge_history`), for the drift pairing
  cannot see. A paired case keeps its history verdict alongside (`history`).

The words of a verdict and the history rule live in `rnnbench.judge`; this
module only joins the night's records and its history into one document
(`api_version` 1, the shape fixed in docs/analysis.md), and `read_verdicts`
checks a file is one. Everything the landing page, `regressions.txt`, the
Atom feed and the job summary say is read from it
(`rnnbench.report.verdicts`), so they cannot disagree.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.analysis.history import baseline
from rnnbench.errors import UsageError
from rnnbench.jsonkind import read_kind_json
from rnnbench.judge.cases import judge_records
from rnnbench.judge.published import HISTORY_METHOD, Published, published
from rnnbench.judge.rules import PAIRED_METHOD, THRESHOLD, present
from rnnbench.sweep.bisect import commits_between

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "API_VERSION",
    "BASELINE_NIGHTS",
    "KIND",
    "NOTHING_CHANGED",
    "NO_LOCK",
    "PAIRED",
    "bisect_command",
    "build_verdicts",
    "count_commits",
    "environment_changes",
    "read_verdicts",
    "write_verdicts",
]

KIND = "rnnbench-verdicts"
API_VERSION = 1
BASELINE_NIGHTS = 5
VERDICT_ORDER = [str(p) for p in Published]  # regressions first, as every rendering lists them
NOTHING_CHANGED = "nothing changed since the previous night: only drift is judged"
NO_LOCK = "the previous night has no lock: paired by commit only"
PAIRED = "the commit or environment changed since the previous night: both were measured tonight, interleaved"
# the fields of a record that place a case in a grid, and the `rnnbench bisect` flag each becomes
_GRID_FLAGS = (
    ("framework", "--framework"), ("device", "--device"), ("variant", "--cell"), ("formulation", "--formulation"),
    ("mode", "--mode"), ("pass", "--pass"), ("dtype", "--dtype"), ("batch", "--batch"),
    ("input_size", "--input-size"), ("hidden", "--hidden"), ("seq_len", "--seq-len"), ("layers", "--layers"),
)  # fmt: skip


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _frameworks(v: Any) -> dict[str, str]:
    if isinstance(v, Mapping):
        return {str(k): str(x) for k, x in v.items()}
    if isinstance(v, str) and v:
        try:
            parsed = json.loads(v)
        except ValueError:
            return {}
        return {str(k): str(x) for k, x in parsed.items()} if isinstance(parsed, dict) else {}
    return {}


def _side(machine: Mapping[str, Any]) -> dict[str, Any]:
    """What names one side of a comparison: its commit, environment lock and framework versions."""
    return {
        "commit": _text(machine.get("git_commit")),
        "lock_digest": _text(machine.get("lock_digest")),
        "frameworks": _frameworks(machine.get("frameworks")),
    }


def environment_changes(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two machine fingerprints' commit and environment: `commit abc -> def`, `torch 2.13.0 ->
    2.14.0` (from the locks' packages where both have them, else the framework versions), in that order."""
    out: list[str] = []
    cb, cn = _text(base.get("git_commit")), _text(new.get("git_commit"))
    if cb != cn:
        out.append(f"commit {(cb or '?')[:12]} -> {(cn or '?')[:12]}")
    pb, pn = base.get("packages"), new.get("packages")
    if isinstance(pb, Mapping) and isinstance(pn, Mapping):
        old, now = {str(k): str(v) for k, v in pb.items()}, {str(k): str(v) for k, v in pn.items()}
    else:
        old, now = _frameworks(base.get("frameworks")), _frameworks(new.get("frameworks"))
    for name in sorted(set(old) | set(now)):
        if old.get(name) != now.get(name):
            out.append(f"{name} {old.get(name, 'absent')} -> {now.get(name, 'absent')}")
    lb, ln = _text(base.get("lock_digest")), _text(new.get("lock_digest"))
    if lb and ln and lb != ln and len(out) == (cb != cn):
        out.append(f"environment lock {lb} -> {ln}")  # the locks differ where no listed version does
    return out


def _number(v: float) -> float | None:
    """A float for JSON: None for NaN or infinity (JSON has neither)."""
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


# -- the nights in the history ----------------------------------------------------------------------


def _nights(frame: pd.DataFrame, machine: str | None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The runner rows of one machine and hardware, and its nights oldest first (run_id, date, commit, lock, frameworks)."""
    rows = frame[frame["source"].eq("run")] if "source" in frame.columns else frame
    rows = rows[rows["run_id"].notna() & rows["date"].notna()]
    if machine is not None:
        rows = rows[rows["machine"].eq(machine)]
    if rows.empty:
        where = f" of machine {machine!r}" if machine else ""
        raise UsageError(f"no rnnbench runner nights{where} to judge")
    starts = rows.groupby("run_id")["date"].min().sort_values(kind="stable")
    newest = rows[rows["run_id"].eq(starts.index[-1])].iloc[0]
    hardware = ("machine", "cpu_model", "cpu_cores", "gpu_name")
    same = rows
    for col in hardware:
        if col in rows.columns:
            v = newest[col]
            same = same[same[col].eq(v).fillna(False).astype(bool)] if present(v) else same[same[col].isna()]
    nights = []
    for run_id in same.groupby("run_id")["date"].min().sort_values(kind="stable").index:
        first = same[same["run_id"].eq(run_id)].iloc[0]
        nights.append(
            {
                "run_id": str(run_id),
                "date": same.loc[same["run_id"].eq(run_id), "date"].min().isoformat(),
                "commit": _text(first.get("commit")),
                "lock_digest": _text(first.get("lock_digest")),
                "frameworks": _frameworks(first.get("frameworks")),
            }
        )
    return same, nights


def _history_cases(rows: pd.DataFrame, night: str, n: int, threshold: float) -> dict[str, Any]:
    """key -> the history verdict of the night's value of each of its timed cases (`history.baseline`)."""
    ok = rows[rows["status"].eq("ok")]
    if "metric" in ok.columns:
        ok = ok[ok["metric"].fillna("time").eq("time")]
    tonight = set(ok.loc[ok["run_id"].eq(night), "key"])
    # only the nights up to this one, and only the cases it measured: each series' newest point is tonight
    until = ok.loc[ok["run_id"].eq(night), "date"].max()
    judged = ok[ok["key"].isin(tonight) & (ok["date"] <= until)]
    verdicts, _ = baseline(judged, n, threshold)
    return {v.key: v for v in verdicts if v.source == "run"}


# -- the document -----------------------------------------------------------------------------------


def build_verdicts(
    frame: pd.DataFrame,
    *,
    paired: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
    baseline_nights: int = BASELINE_NIGHTS,
    threshold: float = THRESHOLD,
    machine: str | None = None,
    generated: str | None = None,
    repo: Path | None = None,
) -> dict[str, Any]:
    """The verdicts document of the newest night in `frame` (a history's rows, `rnnbench.load`), or of NEW when
    `paired` = (BASE document, NEW document) is given (NEW's rows must be in `frame`). `repo`: the git checkout
    that counts the commits between BASE and NEW for the bisect hint (default: rnnbench's own)."""
    new_doc = paired[1] if paired else None
    if new_doc is not None:
        machine = machine or str(new_doc["machine"].get("machine"))
    rows, nights = _nights(frame, machine)
    ids = [n["run_id"] for n in nights]
    tonight = nights[-1]
    if new_doc is not None:
        if new_doc["run_id"] not in ids:
            raise UsageError(f"NEW run {new_doc['run_id'][:12]} is not in the history: import it first")
        tonight = nights[ids.index(new_doc["run_id"])]
    at = ids.index(tonight["run_id"])
    previous = nights[at - 1] if at else None
    if new_doc is not None:  # the documents know more of the environment (the packages) than the history
        tonight = tonight | {"lock_digest": _side(new_doc["machine"])["lock_digest"] or tonight["lock_digest"]}
    history = _history_cases(rows, tonight["run_id"], baseline_nights, threshold)

    cases: dict[str, dict[str, Any]] = {}
    prev_side = {"commit": previous["commit"], "lock_digest": previous["lock_digest"]} if previous else None
    new_side = {"commit": tonight["commit"], "lock_digest": tonight["lock_digest"]}
    for key, h in history.items():
        cases[key] = {
            "key": key, "verdict": h.kind, "ratio": _number(h.ratio), "ci_low": _number(h.low / h.center),
            "ci_high": _number(h.high / h.center), "mde": _number(h.mde), "method": "history",
            "base": prev_side, "new": new_side, "note": _history_note(h.kind, h.outside, h.ratio, h.runs),
        }  # fmt: skip
    pairing, bisect = _pairing(previous, tonight, None), None
    if paired is not None:
        bisect = _judge_paired(cases, *paired, threshold, repo)
        pairing = _pairing(previous, tonight, paired[0]["machine"], paired[1]["machine"])
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    listed = sorted(
        cases.values(), key=lambda c: (order.get(c["verdict"], 99), -abs(math.log(c["ratio"] or 1)), c["key"])
    )
    counts: dict[str, int] = {}
    for case in listed:
        counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
    return {
        "kind": KIND, "api_version": API_VERSION,
        "generated": generated or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": str(rows["machine"].iloc[0]), "threshold": threshold, "baseline_nights": baseline_nights,
        "night": tonight, "previous": previous, "pairing": pairing,
        "methods": {"paired": PAIRED_METHOD, "history": HISTORY_METHOD},
        "bisect": bisect, "cases": listed, "counts": counts,
    }  # fmt: skip


def _judge_paired(
    cases: dict[str, dict[str, Any]], base_doc: Mapping[str, Any], new_doc: Mapping[str, Any], threshold: float,
    repo: Path | None,
) -> dict[str, Any] | None:  # fmt: skip
    """Judge every case of NEW against BASE into `cases` (a case's history verdict kept under `history`);
    the bisect hint when the paired regressions lie between two commits, else None."""
    comparison = judge_records(base_doc["records"], new_doc["records"], threshold)
    base_side = {k: v for k, v in _side(base_doc["machine"]).items() if k != "frameworks"}
    new_side = {k: v for k, v in _side(new_doc["machine"]).items() if k != "frameworks"}
    for c in comparison.cases:
        drift = cases.get(c.key)
        cases[c.key] = {
            "key": c.key, "verdict": str(published(c.verdict)), "ratio": _number(c.ratio),
            "ci_low": _number(c.ci_low), "ci_high": _number(c.ci_high), "mde": _number(c.mde), "method": "paired",
            "base": base_side, "new": new_side, "note": c.note,
        }  # fmt: skip
        if drift is not None:
            cases[c.key]["history"] = {k: drift[k] for k in ("verdict", "ratio", "ci_low", "ci_high", "mde", "note")}
    regressed = sorted(k for k, c in cases.items() if c["verdict"] == Published.REGRESSION and c["method"] == "paired")
    if not (regressed and base_side["commit"] and new_side["commit"] and base_side["commit"] != new_side["commit"]):
        return None
    return {
        "base": base_side["commit"], "new": new_side["commit"], "cases": regressed,
        "commits": count_commits(base_side["commit"], new_side["commit"], repo),
        "command": bisect_command(base_side["commit"], new_side["commit"], regressed, new_doc),
    }  # fmt: skip


def _history_note(kind: str, outside: bool, ratio: float, nights: int) -> str:
    if kind == Published.TOO_NOISY_HISTORY and outside:
        return f"outside its band ({ratio - 1:+.1%}), but the band is wider than the threshold: not published"
    return f"against {nights} previous nights"


def _pairing(
    previous: Mapping[str, Any] | None,
    tonight: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Whether the night was paired, why (or why not), and what changed."""
    if base is not None and new is not None:
        changes = environment_changes(base, new)
        side = {k: v for k, v in _side(base).items()}
        if not side["lock_digest"]:
            reason = NO_LOCK
        elif changes:
            reason = PAIRED
        else:
            reason = "paired, though BASE and NEW name the same commit and environment"
        return {"paired": True, "reason": reason, "base": side, "changes": changes}
    if previous is None:
        return {"paired": False, "reason": "the first night of this machine: nothing to pair with", "base": None,
                "changes": []}  # fmt: skip
    as_machine = {
        "git_commit": previous["commit"],
        "lock_digest": previous["lock_digest"],
        "frameworks": previous["frameworks"],
    }
    now = {"git_commit": tonight["commit"], "lock_digest": tonight["lock_digest"], "frameworks": tonight["frameworks"]}
    changes = environment_changes(as_machine, now)
    lock_changed = bool(
        previous["lock_digest"] and tonight["lock_digest"] and previous["lock_digest"] != tonight["lock_digest"]
    )
    if not changes and not lock_changed:
        reason = NOTHING_CHANGED
    else:
        reason = f"{'; '.join(changes)} since the previous night, but the night was not paired: only drift is judged"
    return {"paired": False, "reason": reason, "base": None, "changes": changes}


def count_commits(base: str, new: str, repo: Path | None = None) -> int | None:
    """How many commits lie on NEW's first-parent path since BASE, or None where the checkout cannot say
    (not a git checkout, a commit it lacks, uncommitted changes, BASE not an ancestor of NEW)."""
    try:
        return len(commits_between(base, new, repo)[2])
    except (UsageError, OSError):
        return None


def bisect_command(base: str, new: str, keys: Sequence[str], new_doc: Mapping[str, Any]) -> str:
    """`rnnbench bisect BASE NEW --cases KEY...` with the grid flags that hold those cases (from their records)."""
    import shlex

    records = [r for r in new_doc["records"] if r["key"] in set(keys)]
    parts = ["rnnbench", "bisect", base[:12], new[:12]]
    if new_doc.get("preset"):
        parts += ["--preset", str(new_doc["preset"])]
    for field, flag in _GRID_FLAGS:
        values = sorted({str(r[field]) for r in records if r.get(field) is not None})
        if values:
            parts += [flag, ",".join(values)]
    parts += ["--cases", *sorted(keys)]
    return " ".join(shlex.quote(p) for p in parts)


# -- the file ---------------------------------------------------------------------------------------


def write_verdicts(doc: Mapping[str, Any], out: Path) -> Path:
    """Write `doc` to `out` whole or not at all (written beside, then renamed); gzip-compressed when `out`
    ends in `.gz` (the archive the results branch keeps every night: a year-sized night's verdicts are
    3.5 MB of JSON, 0.27 MB compressed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".gz":
        # mtime 0: the same verdicts give the same bytes, so git stores a re-run night once
        with gzip.GzipFile(tmp, "wb", mtime=0) as f:
            f.write(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    else:
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def read_verdicts(path: Path) -> dict[str, Any]:
    """A verdicts document; UsageError (one line) for a missing file or one that is not a verdicts document."""
    doc = read_kind_json(path, KIND, API_VERSION, "verdicts document", "write it with `rnnbench verdicts`")
    for field in ("machine", "night", "pairing", "cases", "counts", "threshold"):
        if field not in doc:
            raise UsageError(f"{path}: verdicts document without {field!r}")
    if not isinstance(doc["cases"], list) or not all(isinstance(c, dict) and "key" in c and "verdict" in c
                                                      for c in doc["cases"]):  # fmt: skip
        raise UsageError(f"{path}: verdicts document whose cases are not a list of {{key, verdict, ...}}")
    return doc
