"""Tables and times for the terminal and for pull-request comments: the formatters every CLI command prints with."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_markdown", "format_table", "format_time"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned text columns, numbers right-aligned, one header rule."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def format_markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""
    esc = [[str(v).replace("|", "\\|") for v in r] for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc])


def format_time(seconds: float | None) -> str:
    """A duration with 3 significant digits in the largest unit that keeps it >= 1 (s, ms, µs, ns); '-' if unknown.

    The one time formatter: compare, regressions, history, report, harness and doctor all print times with it,
    so the same duration reads the same everywhere.
    """
    if seconds is None or seconds != seconds:
        return "-"
    if seconds in (float("inf"), float("-inf")):
        return f"{seconds} s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
