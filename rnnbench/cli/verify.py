"""`rnnbench verify`: run every case of a grid once and print how far it is from the reference."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from rnnbench import backends
from rnnbench.case import Case
from rnnbench.cli.options import add_grid_flags, grid_from_args
from rnnbench.display import format_table
from rnnbench.errors import Unsupported, UsageError
from rnnbench.measure.verify import make_inputs, tolerance, verify_kernel
from rnnbench.sweep.grid import Grid, expand

__all__ = ["add_parser", "run", "verify_grid"]


def verify_grid(grid: Grid, quiet: bool = False) -> int:
    """Verify every case of `grid`; print a table; 0 if all agree, 1 otherwise.

    Interrupted (Ctrl-C, or the SIGINT with which `scripts/gpu-check.sh` keeps its deadline), it still
    prints the table and counts of the cases it finished, then lets KeyboardInterrupt go on (exit 130).
    """
    from rnnbench.sweep.memory import check_fits

    cases, skipped = expand(grid)
    if not cases:
        raise UsageError("the grid is empty after filters (is the framework installed?)")
    check_fits(cases)
    for device in grid.devices:
        if device == "cpu":
            continue
        for fw in sorted({c.framework for c in cases if c.device == device}):
            if device not in backends.get(fw).devices():
                raise UsageError(f"device {device!r} is not available to {fw} here (no CUDA GPU visible)")
    rows, passed, failures = [], 0, 0
    done, interrupted = 0, False
    try:
        for case in tqdm(cases, desc="verify", unit="case", file=sys.stderr, disable=None):
            passed_, failed_, row = _verify_case(case, skipped, quiet)
            passed, failures, done = passed + passed_, failures + failed_, done + 1
            if row:
                rows.append(row)
    except KeyboardInterrupt:
        interrupted = True
    headers = [
        "framework",
        "device",
        "cell",
        "formulation",
        "mode",
        "pass",
        "L",
        "dtype",
        "max_abs",
        "max_rel",
        "tol",
        "result",
        "worst",
    ]
    if rows:
        print(format_table(headers, rows))
    frameworks = ", ".join(sorted({c.framework for c in cases}))
    print(f"\n{passed} passed, {failures} failed, {len(skipped)} not applicable ({frameworks})")
    if interrupted:
        print(f"interrupted after {done} of {len(cases)} cases; the rest were not verified")
        sys.stdout.flush()
        raise KeyboardInterrupt
    return 1 if failures else 0


def _verify_case(case: Case, skipped: list[tuple[Case, str]], quiet: bool) -> tuple[int, int, list[object] | None]:
    """(passed, failed, table row or None) for one case; a case refused at build time joins `skipped`."""
    weights, x, state0 = make_inputs(case)
    try:
        check = verify_kernel(backends.get(case.framework).build(case, weights, x, state0), weights, x, state0)
        ok, abs_err, rel_err, note = check.ok, check.max_abs_error, check.max_rel_error, check.worst
        tol = check.tolerance
    except Unsupported as exc:  # refused at build time: not applicable, and only that (not also passed)
        skipped.append((case, str(exc)))
        return 0, 0, None
    except Exception as exc:  # a backend bug is a failed check, reported, not a crash
        ok, abs_err, rel_err, note = False, float("nan"), float("nan"), f"{type(exc).__name__}: {exc}"[:120]
        tol = tolerance(case)
    if ok and quiet:
        return 1, 0, None
    row: list[object] = [case.framework, case.device, case.spec.label, case.formulation, case.mode, case.pass_,
                         case.layers, f"{case.dtype}-{case.precision}" if case.dtype != "float32" else case.dtype,
                         abs_err, rel_err, tol, "pass" if ok else "FAIL", note]  # fmt: skip
    return int(ok), int(not ok), row


def run(args: argparse.Namespace) -> int:
    return verify_grid(grid_from_args(args), quiet=args.quiet)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("verify", help="check every formulation against the numpy reference")
    add_grid_flags(p, "verify")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    p.set_defaults(func=run)
