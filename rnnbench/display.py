"""Tables, times and values for the terminal and for pull-request comments: the formatters every command prints with.

Cells often hold text from result files (machine names, case keys, errors),
so both formatters escape: markdown cells cannot open a link, an emphasis,
a code span or an HTML tag, or break the table (`escape_markdown`), and
terminal cells cannot carry control characters (`printable`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "escape_markdown",
    "format_markdown",
    "format_table",
    "format_time",
    "format_value",
    "hardware_label",
    "printable",
    "text_or_blank",
]

# characters that open markup inside a GitHub markdown table cell (emphasis, code, links and images,
# strike-through, the cell border), each escaped with a backslash; line-start syntax (#, -, 1.)
# cannot occur inside a cell, so numbers and dates stay readable
_MARKDOWN_SPECIAL = set("\\`*_[]|~")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;"}


def escape_markdown(text: str) -> str:
    """`text` as literal markdown inline text: no markup, no HTML, no line breaks."""
    out = []
    for ch in printable(text):
        if ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MARKDOWN_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def printable(text: str) -> str:
    """`text` with line breaks as spaces and other control characters as `\\x..` escapes (a terminal-safe line)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " if ch in "\n\r\t" else ascii(ch)[1:-1] for ch in text)


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
    return "" if v is None else printable(str(v))


def format_markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; every cell escaped (`escape_markdown`), headers are the caller's own."""
    esc = [[escape_markdown("" if v is None else str(v)) for v in r] for r in rows]
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


def format_value(value: float, unit: str) -> str:
    """A measured value in its own unit: seconds scaled to ms/µs/ns, bytes to KiB/MiB/GiB, others as is."""
    if value != value:
        return "-"
    if unit == "s":
        return format_time(value)
    if unit in ("bytes", "B", "byte"):
        for name, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.0f} B"
    return f"{value:.3g} {unit}".rstrip()


def text_or_blank(value: object) -> str:
    """A cell from a result file as text: '' where it holds nothing (None, NaN, pandas' NA or NaT)."""
    if value is None:
        return ""
    try:
        missing = bool(value != value)  # NaN and NaT are the values unequal to themselves
    except TypeError:  # pandas' NA: its comparisons are NA too, and NA has no truth value
        return ""
    except ValueError:  # an array compares element by element: it is not missing as a whole
        missing = False
    return "" if missing else str(value)


def hardware_label(cpu: object, gpu: object, cores: object) -> str:
    """A hardware fingerprint as text: CPU model, GPU model, core count (what a history series belongs to)."""
    c = text_or_blank(cores)
    return (
        f"{text_or_blank(cpu) or 'unknown CPU'} / {text_or_blank(gpu) or 'no GPU'} / {c + ' cores' if c else '? cores'}"
    )
