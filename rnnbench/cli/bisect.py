"""`rnnbench bisect GOOD BAD`: the first commit where chosen cases got slower (see `rnnbench.sweep.bisect`)."""

from __future__ import annotations

import argparse

from rnnbench.case import Case
from rnnbench.cli import options
from rnnbench.cli.ab import ab_options
from rnnbench.errors import UsageError
from rnnbench.sweep.ab import project_root
from rnnbench.sweep.bisect import EXIT_CODES, Step, bisect, check, commits_between, subject
from rnnbench.sweep.grid import expand

__all__ = ["add_parser", "run"]

# a bisect step is a small `ab` over a few cases: fewer rounds than `ab`'s default keep each step short;
# an undecided step is measured once more with twice the rounds
ROUNDS = 3
BUDGET_S = 1.0


def _cases(args: argparse.Namespace) -> list[Case]:
    """The grid's cases, narrowed to `--cases` keys when given; UsageError when none is left."""
    cases, _ = expand(options.grid_from_args(args))
    if args.cases:
        by_key = {c.key: c for c in cases}
        missing = [k for k in args.cases if k not in by_key]
        if missing:
            raise UsageError(
                f"case {missing[0]!r} is not in the grid (preset {args.preset!r} and its filters); "
                "pass the --preset (and filters) it was measured with"
            )
        cases = [by_key[k] for k in dict.fromkeys(args.cases)]
    if not cases:
        raise UsageError("the grid selects no case (is the framework installed?)")
    return cases


def _ratio(step: Step) -> str:
    """The ratio and paired interval of a step's slowest case, for the step line."""
    cases = [c for c in step.comparison.cases if c.ratio == c.ratio]  # NaN ratios: nothing to show
    if not cases:
        return ""
    worst = max(cases, key=lambda c: c.ratio)
    return f"; slowest {worst.key} x{worst.ratio:.3f} [{worst.ci_low:.3f}, {worst.ci_high:.3f}]"


def _print_step(step: Step, n: int) -> None:
    print(
        f"step {n}: {step.commit[:12]} {step.subject!r}: {step.slower} of {step.total} cases slower, "
        f"{step.not_slower} not slower"
        + (f", {step.busy} flagged busy" if step.busy else "")
        + f" ({step.rounds} rounds){_ratio(step)} -> {step.verdict.value}",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    cases = _cases(args)
    opts = ab_options(args, args.good, args.bad)
    n_threads = opts.threads
    if args.step:
        good, bad, _ = commits_between(args.good, args.bad)
        steps = check(good, bad, cases, n_threads, opts)
        for i, step in enumerate(steps, 1):
            _print_step(step, i)
        return EXIT_CODES[steps[-1].verdict]
    result = bisect(args.good, args.bad, cases, n_threads, opts, on_step=_print_step)
    root = project_root()
    print(f"{len(result.commits)} commits after {result.good[:12]} up to {result.bad[:12]}; {len(result.steps)} steps")
    if result.skipped:
        print(f"undecided after two tries, skipped: {', '.join(c[:12] for c in result.skipped)}")
    if result.first_bad is not None:
        found = f"first slower commit: {result.first_bad} {subject(result.first_bad, root)}"
    elif result.candidates:
        found = f"the first slower commit is one of: {', '.join(c[:12] for c in result.candidates)} (skips)"
    else:
        found = ""
    print(found or f"BAD {result.bad[:12]} is not slower than GOOD {result.good[:12]} on these cases: nothing to find")
    return 0 if found else 1


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bisect",
        help="first commit between GOOD and BAD where the chosen cases got slower (a paired ab per step)",
        description=(
            "Binary search over the first-parent commits GOOD..BAD; each step runs a small paired `ab` of GOOD "
            "against the commit under test over the chosen cases. Exit 0 when a commit is named, 1 when BAD is "
            "not slower. With --step, judge BAD alone against GOOD and exit as `git bisect run` reads it "
            "(0 good, 1 slower, 125 undecided): git bisect run rnnbench bisect GOOD HEAD --step ..."
        ),
    )
    p.add_argument("good", type=options.nonempty, help="a revision where the cases were fast")
    p.add_argument("bad", type=options.nonempty, help="a later revision (descendant of GOOD) where they are slower")
    p.add_argument(
        "--cases",
        nargs="+",
        metavar="KEY",
        help="case keys to bisect on (from a night's regressions); they must be in the grid",
    )
    p.add_argument("--step", action="store_true", help="judge BAD against GOOD once; exit 0/1/125 for git bisect run")
    options.add_grid_flags(p, "quick")
    options.add_threshold_flag(p)
    p.add_argument(
        "--threads", type=options.threads, default=None, help="compute threads on both sides (default: all cores)"
    )
    p.add_argument("--results", type=options.output_dir, help="results directory for every step's run documents")
    p.add_argument(
        "--rounds", type=options.int_range(2, 100), default=ROUNDS,
        help=f"interleaved rounds per step (default {ROUNDS}; an undecided step is repeated with twice as many)",
    )  # fmt: skip
    p.add_argument(
        "--extra-rounds", type=options.int_range(0, 100), default=2,
        help="rounds more, at most, for the cases still too noisy after --rounds (default 2)",
    )  # fmt: skip
    options.add_budget_flags(p, " and side per step", budget=BUDGET_S)
    p.set_defaults(func=run)
