"""A synthetic history at the nightly's scale, grown from a real run document, to measure the store on.

Reads one real `rnnbench-run` document (its records, samples, machine), and writes `--nights` nights of
`--cases` cases each into a history folder (`rnnbench history import`'s layout), night by night as
`scripts/publish.sh` would append them: each night a new date and commit, its own whole-night level
(lognormal, sd `--night-sd`) and per-case levels (sd `--case-sd`) applied to the real samples. Cases
beyond the document's are its records again under new keys (the batch size shifted), so every key is
distinct. With `--documents DIR` it also writes each night as a JSON run document, for comparing sizes
and load times against the documents the history replaces (costly: ~25 MB a night at 6498 cases).

Usage (from the repository root):
    .venv/bin/python scripts/synth_history.py results/runs/ci-cpu-2core/20261122T082918-efac6ef0-e3774fa1.json \
        --out /tmp/history-365 --nights 365 --cases 6498
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from rnnbench.analysis import columnar
from rnnbench.analysis.frame import SkippedFileWarning, load


def _fail(message: str) -> NoReturn:
    print(f"synth_history: {message}", file=sys.stderr)
    raise SystemExit(2)


def _template(document: Path, cases: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    headers: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        frame = load([document], headers=headers)
    frame = frame[(frame["source"] == "run") & (frame["status"] == "ok")].reset_index(drop=True)
    if frame.empty:
        _fail(f"{document}: no measured run records to grow a history from")
    copies = []
    for rep in range(-(-cases // len(frame))):
        c = frame.copy()
        if rep:
            c["batch"] = c["batch"] + rep * 1000  # a distinct shape, so a distinct key
            c["key"] = [k.replace(f"/b{b}/", f"/b{b + rep * 1000}/") for k, b in zip(frame["key"], frame["batch"])]
        copies.append(c)
    return pd.concat(copies, ignore_index=True).iloc[:cases].reset_index(drop=True), headers[str(document)]


def _header(template: dict[str, Any], night: pd.DataFrame) -> dict[str, Any]:
    """The night's run document header, as `history import` stores it: the template's, this night's run and commit."""
    first = night.iloc[0]
    machine = dict(template.get("machine") or {}) | {"machine": first["machine"], "git_commit": first["commit"]}
    return template | {"run_id": first["run_id"], "created": first["date"].isoformat(), "machine": machine}


def _night(template: pd.DataFrame, i: int, rng: np.random.Generator, args: argparse.Namespace) -> pd.DataFrame:
    night = template.copy()
    level = float(np.exp(rng.normal(0.0, args.night_sd))) * np.exp(rng.normal(0.0, args.case_sd, len(night)))
    date = pd.Timestamp(args.first, tz="UTC") + pd.Timedelta(days=i)
    commit = rng.bytes(20).hex()
    night["round_samples_s"] = [[[s * f for s in r] for r in rs] for rs, f in zip(night["round_samples_s"], level)]
    night["samples_s"] = [[s for r in rs for s in r] for rs in night["round_samples_s"]]
    for col in ("median_s", "iqr_s", "mean_s", "q25_s", "q75_s", "value"):
        night[col] = night[col] * level
    night["gflops"] = night["gflops"] / level
    night["date"], night["commit"], night["commit8"] = date, commit, commit[:8]
    night["machine"] = args.machine
    night["file"] = f"runs/{args.machine}/{date:%Y%m%dT%H%M%S}-{commit[:8]}-synth{i:04d}.json"
    night["run_id"] = f"synth{i:04d}"
    return night


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("document", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nights", type=int, default=365)
    p.add_argument("--cases", type=int, default=6498, help="cases a night (nightly-gpu: 6498)")
    p.add_argument("--machine", default="synth-gpu")
    p.add_argument("--first", default="2026-01-01")
    p.add_argument("--night-sd", type=float, default=0.05, help="sd of a whole night's log level")
    p.add_argument("--case-sd", type=float, default=0.10, help="sd of a case's log level between nights")
    p.add_argument("--keep-samples", type=int, default=columnar.KEEP_SAMPLES)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not args.document.is_file():
        _fail(f"no such document: {args.document}")
    if args.nights < 1 or args.cases < 1:
        _fail("--nights and --cases must be positive")
    root = columnar.create(args.out, args.keep_samples)
    template, header = _template(args.document, args.cases)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for i in range(args.nights):
        night = _night(template, i, rng, args)
        columnar.write_night(root, night, _header(header, night))
        if (i + 1) % 25 == 0 or i + 1 == args.nights:
            print(f"{i + 1} nights written, {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    print(f"{args.nights} nights of {len(template)} cases in {root}")


if __name__ == "__main__":
    main()
