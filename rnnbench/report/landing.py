"""The published landing page: what changed last night, in one static HTML file.

This module owns judging the newest run of a results history against that
machine's previous runs and writing the page the nightly job publishes at the
root of its site: the regressions and improvements outside the history
baseline, the formulation winners that changed since the previous run, the
cases that failed, links to the full rnnbench report and the asv dashboard,
and the machine fingerprint of the run. The page has inline CSS, no scripts
and only relative links, so it reads the same from the file system (offline)
and from GitHub Pages. Everything taken from result files is HTML-escaped.

The baseline of a case is its samples in the last `baseline` runs of the
same machine class (machine name, CPU model, core count, GPU model) before
the newest; `compare`'s verdict statistics (bootstrap interval of the ratio
of medians against the threshold band) judge the newest samples against
that pool. SWITCH(verdicts): once `rnnbench regressions --baseline N` lands
(issue 9), `last_night` should take its verdicts instead of pooling samples
here; the page layout stays.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnbench.display import format_time
from rnnbench.errors import UsageError
from rnnbench.judge.rules import Verdict, compare_samples, resolve_winner
from rnnbench.sweep.merge import machine_class
from rnnbench.sweep.store import iter_documents, read_document

__all__ = ["BASELINE_RUNS", "Finding", "Links", "Night", "WinnerChange", "last_night", "render", "write_landing"]

BASELINE_RUNS = 5  # previous runs a case's baseline pools (fewer while the history is short)


@dataclass(frozen=True)
class Finding:
    """A case whose newest samples fall outside its baseline."""

    key: str
    verdict: Verdict  # slower or faster
    ratio: float  # newest median / baseline median
    ci_low: float
    ci_high: float
    baseline_s: float
    newest_s: float
    baseline_runs: int


@dataclass(frozen=True)
class WinnerChange:
    group: str  # the case key with its formulation left out
    before: str
    after: str
    lead: float | None  # runner-up time / winner time in the newest run (1.0 = a dead heat)


@dataclass(frozen=True)
class Night:
    path: Path
    run: dict[str, Any]
    previous: list[dict[str, Any]]  # the baseline runs, newest first
    findings: list[Finding] = field(default_factory=list)
    winners: list[WinnerChange] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    threshold: float = 0.05

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == Verdict.SLOWER]

    @property
    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == Verdict.FASTER]


@dataclass(frozen=True)
class Links:
    """Relative links from the landing page; None leaves a link out."""

    report: str | None = "report/index.html"
    asv: str | None = "asv/index.html"
    check: str | None = "regressions.txt"


def _group(key: str, formulation: str) -> str:
    return key.replace(f"/{formulation}/", "/*/", 1)


def _resolved_winners(records: Sequence[dict[str, Any]]) -> dict[str, tuple[str | None, float | None]]:
    """group -> (fastest formulation, or None for a tie; runner-up/winner time ratio) over the ok records.

    A winner is named only when its lead is resolved (`resolve_winner`: the
    interval of each other formulation's time over its own excludes 1).
    """
    groups: dict[str, dict[str, list[list[float]]]] = {}
    for r in records:
        if r["status"] == "ok" and r.get("median_s"):
            rounds = r.get("round_samples_s") or [r.get("samples_s") or [r["median_s"]]]
            groups.setdefault(_group(r["key"], r["formulation"]), {})[r["formulation"]] = rounds
    out: dict[str, tuple[str | None, float | None]] = {}
    for group, samples in groups.items():
        if len(samples) < 2:
            continue
        w = resolve_winner(samples)
        out[group] = (w.winner, w.lead)
    return out


def last_night(
    history: Path, run: Path | None = None, *, baseline: int = BASELINE_RUNS, threshold: float = 0.05
) -> Night:
    """The newest run in `history` (or `run`) judged against the previous runs of its machine class."""
    docs = [(p, d) for p, d in iter_documents(history) if not d.get("shard")]  # merged or unsharded runs only
    if run is not None:
        newest_path, newest = Path(run), read_document(Path(run))
    elif docs:
        newest_path, newest = max(docs, key=lambda pd: pd[1]["created"])
    else:
        raise UsageError(f"no merged rnnbench runs under {history}/runs")
    cls = machine_class(newest["machine"])
    previous = sorted(
        (
            d
            for _, d in docs
            if d["run_id"] != newest["run_id"]
            and machine_class(d["machine"]) == cls
            and d["created"] < newest["created"]
        ),
        key=lambda d: d["created"],
        reverse=True,
    )[:baseline]

    pools: dict[str, list[list[float]]] = {}
    for d in previous:
        for old in d["records"]:
            if old["status"] == "ok" and old["samples_s"]:
                pools.setdefault(old["key"], []).append(old["samples_s"])
    findings: list[Finding] = []
    for r in newest["records"]:
        if r["status"] != "ok" or r["key"] not in pools:
            continue
        runs = len(pools[r["key"]])
        pool = [s for samples in pools[r["key"]] for s in samples]
        v = compare_samples(pool, r["samples_s"], threshold)
        if v.verdict in (Verdict.SLOWER, Verdict.FASTER):
            base = sorted(pool)[len(pool) // 2]
            findings.append(Finding(r["key"], v.verdict, v.ratio, v.ci_low, v.ci_high, base, r["median_s"], runs))
    findings.sort(key=lambda f: -abs(f.ratio - 1))

    winners: list[WinnerChange] = []
    if previous:
        before, after = _resolved_winners(previous[0]["records"]), _resolved_winners(newest["records"])
        for group in sorted(set(before) & set(after)):
            # a change only when both winners' leads are resolved: a tie on either side is no change of winner
            b, a = before[group][0], after[group][0]
            if b is not None and a is not None and b != a:
                winners.append(WinnerChange(group, b, a, after[group][1]))
    failed = [(r["key"], r.get("error") or "") for r in newest["records"] if r["status"] == "failed"]
    return Night(newest_path, newest, previous, findings, winners, failed, threshold)


# -- HTML -------------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;
font-size:.9em}th{background:#f3f3f3}.bad{color:#b00020}.good{color:#0a7a32}.summary{font-size:1.15em}
code{font-size:.9em}nav a{margin-right:1.5em}"""


def _cell_html(value: object) -> str:
    return html.escape("-" if value is None else str(value))


def _html_table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_cell_html(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell_html(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _findings(findings: list[Finding]) -> str:
    rows: list[list[object]] = [
        [f"{f.ratio - 1:+.1%}", f"[{f.ci_low:.3f}, {f.ci_high:.3f}]", format_time(f.baseline_s), format_time(f.newest_s),
         f.baseline_runs, f.key]
        for f in findings
    ]  # fmt: skip
    return _html_table(["change", "99% CI of ratio", "baseline", "last night", "baseline runs", "case"], rows)


def render(night: Night, links: Links = Links(), generated: str | None = None) -> str:
    """The landing page as one HTML document."""
    run, m = night.run, night.run["machine"]
    generated = generated or datetime.now(timezone.utc).isoformat(timespec="seconds")
    counts = {s: sum(r["status"] == s for r in run["records"]) for s in ("ok", "failed", "skipped")}
    shards = run.get("merged_from") or []
    regs, imps = night.regressions, night.improvements
    summary = (
        f'<span class="{"bad" if regs else "good"}">{len(regs)} regression{"s" * (len(regs) != 1)}</span>, '
        f"{len(imps)} improvement{'s' * (len(imps) != 1)}, {len(night.winners)} winner change"
        f"{'s' * (len(night.winners) != 1)}, "
        f'<span class="{"bad" if night.failed else "good"}">{len(night.failed)} failed case'
        f"{'s' * (len(night.failed) != 1)}</span>"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rnnbench nightly: {_cell_html(m.get('machine'))}</title><style>{_CSS}</style></head><body>",
        f"<h1>rnnbench nightly: <code>{_cell_html(m.get('machine'))}</code></h1>",
        "<nav>"
        + "".join(
            f'<a href="{html.escape(href)}">{label}</a>'
            for label, href in (
                ("Full rnnbench report", links.report),
                ("asv dashboard", links.asv),
                ("Regression check output", links.check),
            )
            if href
        )
        + "</nav>",
        f'<p id="run" data-run-id="{_cell_html(run["run_id"])}">Run <code>{_cell_html(run["run_id"][:12])}</code> of commit '
        f"<code>{_cell_html((m.get('git_commit') or '-')[:12])}</code>, preset <code>{_cell_html(run.get('preset'))}</code>, "
        f"started {_cell_html(run['created'])}, finished {_cell_html(run.get('finished'))}; "
        f"{len(shards) or 1} shard document{'s' * ((len(shards) or 1) != 1)}; {counts['ok']} cases measured, "
        f"{counts['failed']} failed, {counts['skipped']} not applicable.</p>",
        f'<p class="summary" id="summary">{summary} against a baseline of the previous '
        f"{len(night.previous)} run{'s' * (len(night.previous) != 1)} on this machine class "
        f"(threshold {night.threshold:.0%}).</p>",
    ]
    if not night.previous:
        parts.append("<p>This is the first run of this machine class: there is no baseline to judge it against.</p>")
    parts.append('<section id="regressions"><h2>Regressions</h2>')
    parts.append(_findings(regs) if regs else "<p>None outside the baseline.</p>")
    parts.append('</section><section id="improvements"><h2>Improvements</h2>')
    parts.append(_findings(imps) if imps else "<p>None outside the baseline.</p>")
    parts.append('</section><section id="winners"><h2>Winners that changed since the previous run</h2>')
    if night.winners:
        rows: list[list[object]] = [
            [w.before, w.after, "-" if w.lead is None else f"{w.lead:.2f}x", w.group] for w in night.winners
        ]
        parts.append(_html_table(["before", "now", "lead now", "case (* = formulation)"], rows))
    else:
        parts.append("<p>No winner changed.</p>")
    parts.append('</section><section id="failed"><h2>Failed cases</h2>')
    parts.append(_html_table(["case", "error"], [[k, e] for k, e in night.failed]) if night.failed else "<p>None.</p>")
    parts.append('</section><section id="machine"><h2>Machine fingerprint</h2>')
    fp_rows: list[list[object]] = []
    for k, v in m.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in v.items())
        elif isinstance(v, list):
            v = ", ".join(map(str, v))
        fp_rows.append([k, v])
    parts.append(_html_table(["field", "value"], fp_rows))
    if shards:
        parts.append("<h3>Shards</h3>")
        parts.append(
            _html_table(
                ["shard", "host", "cases", "started", "finished"],
                [[s["shard"], s.get("hostname"), s["records"], s["created"], s.get("finished")] for s in shards],
            )
        )
    parts.append(
        f"</section><p><small>Generated {_cell_html(generated)} by <code>rnnbench landing</code>. A case's baseline pools "
        "its per-call samples from the previous runs; the verdict is <code>compare</code>'s (99% bootstrap interval "
        "of the ratio of medians against the threshold band).</small></p></body></html>"
    )
    return "\n".join(parts) + "\n"


def write_landing(night: Night, out: Path, links: Links = Links()) -> Path:
    """Write `out/index.html`; links whose target is missing under `out` are left out."""
    out.mkdir(parents=True, exist_ok=True)
    present = Links(**{name: (href if href and (out / href).exists() else None) for name, href in vars(links).items()})
    page = out / "index.html"
    page.write_text(render(night, present), encoding="utf-8")
    return page
