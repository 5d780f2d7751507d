"""A `Comparison` for people and programs: a text table, a markdown table (pull-request comments) or JSON.

This module owns rendering finished comparisons only; it judges nothing (the
verdicts come from `rnnbench.judge`). Text from result files (case keys,
machine names, warnings) is escaped for markdown and made printable for the
terminal; JSON has no NaN, so an undefined interval or MDE is null.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from rnnbench.display import escape_markdown, format_markdown, format_table, format_value, printable
from rnnbench.judge.bootstrap import NoiseModel
from rnnbench.judge.cases import CaseComparison, Comparison
from rnnbench.judge.rules import VERDICTS, Verdict

__all__ = ["format_comparison"]

# verdicts the summary line counts even at zero: a reader looks for these four
_ALWAYS_COUNTED = (Verdict.SLOWER, Verdict.FASTER, Verdict.TOO_NOISY, Verdict.SAME)


def _json_number(v: object) -> object:
    """JSON has no NaN: an undefined interval or MDE is null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _percent(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def _interval_text(c: CaseComparison) -> str:
    return "-" if c.ci_low != c.ci_low else f"[{c.ci_low:.3f}, {c.ci_high:.3f}]"


def _case_json(c: CaseComparison) -> dict[str, Any]:
    d = {k: _json_number(v) for k, v in asdict(c).items()}
    if c.unit == "s":  # the names readers of earlier versions know
        d["base_median_s"], d["new_median_s"] = d["base_value"], d["new_value"]
    return d


def _common_text(cmp: Comparison) -> str:
    shift, n = cmp.common_mode
    if not n:
        return "common-mode shift: - (no time case compared)"
    return f"common-mode shift: median NEW/BASE time ratio {shift:.3f} ({shift - 1:+.1%}) over {n} cases"


def _noise_json(noise: NoiseModel | None) -> dict[str, Any] | None:
    if noise is None:
        return None
    return {
        "round_sd": math.sqrt(noise.round_var), "run_sd": math.sqrt(noise.run_var), "shift": math.exp(noise.shift),
        "prior_df": noise.prior_df, "cases": noise.cases,
    }  # fmt: skip


def _noise_text(noise: NoiseModel | None) -> list[str]:
    """The floor's line: none for `ab` (no floor) or where no case had two rounds."""
    if noise is None:
        return []
    run = f", between runs {math.sqrt(noise.run_var):.1%}" if noise.run_var else ""
    run += f", whole-run shift {math.exp(noise.shift) - 1:+.1%} counted as drift" if noise.shift else ""
    return [
        f"noise floor: between rounds {math.sqrt(noise.round_var):.1%}{run} (log sd, pooled over {noise.cases} "
        f"cases, prior df {noise.prior_df:.3g})"
    ]


def format_comparison(cmp: Comparison, fmt: str = "table") -> str:
    """The comparison as a text table, a markdown table or JSON."""
    counts = {v: cmp.count(v) for v in VERDICTS if cmp.count(v) or v in _ALWAYS_COUNTED}
    shift, n_shift = cmp.common_mode
    if fmt == "json":
        return json.dumps(
            {
                "method": cmp.method,
                "threshold": cmp.threshold,
                "confidence": cmp.confidence,
                "counts": counts,
                "common_mode": {"ratio": _json_number(shift), "cases": n_shift},
                "noise": _noise_json(cmp.noise),
                "warnings": cmp.warnings,
                "cases": [_case_json(c) for c in cmp.cases],
                "only_base": cmp.only_base,
                "only_new": cmp.only_new,
                "not_ok": [{"case": k, "base": b, "new": n} for k, b, n in cmp.not_ok],
                "both_skipped": cmp.both_skipped,
            },
            indent=2,
            allow_nan=False,
        )
    headers = ["verdict", "new/base", f"{cmp.confidence:.0%} CI", "MDE", "base", "new", "case", "note"]
    rows = [
        [
            c.verdict,
            f"{c.ratio:.3f}",
            _interval_text(c),
            _percent(c.mde),
            format_value(c.base_value, c.unit),
            format_value(c.new_value, c.unit),
            c.key if c.metric == "time" else f"{c.key} [{c.metric}]",
            c.note,
        ]
        for c in cmp.cases
    ]
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) + f" (threshold {cmp.threshold:.0%})"
    if cmp.both_skipped:
        summary += f"; {cmp.both_skipped} not applicable on both sides"
    extra = []
    for title, keys in (("only in BASE", cmp.only_base), ("only in NEW", cmp.only_new)):
        if keys:
            extra.append(f"{title} ({len(keys)}): " + ", ".join(keys))
    if cmp.not_ok:
        extra.append(
            f"not ok on one side ({len(cmp.not_ok)}): "
            + ", ".join(f"{k} (base {b}, new {n})" for k, b, n in cmp.not_ok)
        )
    warn = [f"warning: {w}" for w in cmp.warnings]
    if fmt == "markdown":
        table = format_markdown(headers, rows)
        # case labels and warnings name machines and cases from result files: escaped like the table's cells
        head = [
            f"**{summary}**",
            f"**{escape_markdown(_common_text(cmp))}**",
            *(f"> {escape_markdown(w)}" for w in warn),
            f"_{escape_markdown(cmp.method)}_",
            *(f"_{escape_markdown(line)}_" for line in _noise_text(cmp.noise)),
        ]
        return "\n\n".join([*head, table, *(f"- {escape_markdown(e)}" for e in extra)]) + "\n"
    warn, extra = [printable(w) for w in warn], [printable(e) for e in extra]
    return "\n".join(
        [
            summary,
            _common_text(cmp),
            *warn,
            cmp.method,
            *_noise_text(cmp.noise),
            "",
            format_table(headers, rows),
            *(["", *extra] if extra else []),
        ]
    )
