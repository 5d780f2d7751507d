"""The published landing page: what last night found, in one static HTML file.

This module owns the page the nightly job publishes at the root of its site,
rendered from the night's verdicts document (`SITE/verdicts.json`,
`rnnbench.analysis.verdicts`; the verdicts themselves come from
`rnnbench.judge`): whether the night was paired and why, the published
regressions and improvements with their ratio, interval, method and both
commits/environments, the cases too noisy to judge, each case's smallest
detectable change (MDE), and, where a paired night found regressions between
two commits, the exact `rnnbench bisect` command. From the run documents it
adds what the verdicts do not hold: the formulation winners that changed since
the previous run, the cases that failed, and the machine fingerprint. The page
has inline CSS, no scripts and only relative links, so it reads the same from
the file system (offline) and from GitHub Pages. Everything taken from result
files is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnbench.errors import UsageError
from rnnbench.judge.rules import resolve_winner
from rnnbench.report.verdicts import (
    change,
    interval,
    percent,
    published_improvements,
    published_regressions,
    side,
    too_noisy,
)
from rnnbench.sweep.merge import machine_class
from rnnbench.sweep.store import iter_documents, read_document

__all__ = ["Links", "Night", "WinnerChange", "last_night", "render", "write_landing"]


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
    previous: dict[str, Any] | None  # the previous run of the machine class (for winner changes)
    verdicts: dict[str, Any]  # the night's verdicts document
    winners: list[WinnerChange] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def regressions(self) -> list[dict[str, Any]]:
        return published_regressions(self.verdicts)

    @property
    def improvements(self) -> list[dict[str, Any]]:
        return published_improvements(self.verdicts)


@dataclass(frozen=True)
class Links:
    """Relative links from the landing page; None leaves a link out."""

    report: str | None = "report/index.html"
    asv: str | None = "asv/index.html"
    check: str | None = "regressions.txt"
    verdicts: str | None = "verdicts.json"
    feed: str | None = "feed.xml"


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


def last_night(history: Path, verdicts: dict[str, Any], run: Path | None = None) -> Night:
    """The run `verdicts` judged (or `run`), found in `history`, with the previous run of its machine class
    for winner changes; UsageError when the history does not hold it."""
    docs = [(p, d) for p, d in iter_documents(history) if not d.get("shard")]  # merged or unsharded runs only
    wanted = str(verdicts["night"].get("run_id"))
    if run is not None:
        newest_path, newest = Path(run), read_document(Path(run))
    else:
        found = [(p, d) for p, d in docs if d["run_id"] == wanted]
        if not found:
            raise UsageError(
                f"the run the verdicts judge ({wanted[:12]}) is not among the merged runs in {history}/runs"
            )
        newest_path, newest = found[0]
    if newest["run_id"] != wanted:
        raise UsageError(f"the verdicts judge run {wanted[:12]}, not {newest['run_id'][:12]}: write them for this run")
    cls = machine_class(newest["machine"])
    earlier = [
        d for _, d in docs
        if d["run_id"] != newest["run_id"] and machine_class(d["machine"]) == cls and d["created"] < newest["created"]
    ]  # fmt: skip
    previous = max(earlier, key=lambda d: d["created"]) if earlier else None
    winners: list[WinnerChange] = []
    if previous is not None:
        before, after = _resolved_winners(previous["records"]), _resolved_winners(newest["records"])
        for group in sorted(set(before) & set(after)):
            # a change only when both winners' leads are resolved: a tie on either side is no change of winner
            b, a = before[group][0], after[group][0]
            if b is not None and a is not None and b != a:
                winners.append(WinnerChange(group, b, a, after[group][1]))
    failed = [(r["key"], r.get("error") or "") for r in newest["records"] if r["status"] == "failed"]
    return Night(newest_path, newest, previous, verdicts, winners, failed)


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


def _findings(cases: list[dict[str, Any]]) -> str:
    rows: list[list[object]] = [
        [change(c), interval(c), c["method"], side(c.get("base")), side(c.get("new")), percent(c.get("mde")), c["key"]]
        for c in cases
    ]
    headers = ["change", "interval of ratio", "method", "base commit (lock)", "new commit (lock)", "mde", "case"]
    return _html_table(headers, rows)


def _pairing(v: dict[str, Any]) -> str:
    p = v["pairing"]
    head = "Paired night" if p["paired"] else "Not paired"
    parts = [f'<section id="pairing"><h2>{head}</h2><p>{_cell_html(p["reason"])}</p>']
    if p.get("changes"):
        parts.append("<ul>" + "".join(f"<li>{_cell_html(c)}</li>" for c in p["changes"]) + "</ul>")
    night, base = v["night"], p.get("base")
    if p["paired"] and base:
        parts.append(
            f"<p>BASE: commit <code>{_cell_html((base.get('commit') or '-')[:12])}</code>, lock "
            f"<code>{_cell_html(base.get('lock_digest') or 'none')}</code>; NEW: commit "
            f"<code>{_cell_html((night.get('commit') or '-')[:12])}</code>, lock "
            f"<code>{_cell_html(night.get('lock_digest') or 'none')}</code>. BASE and NEW were measured tonight, "
            "interleaved round by round; their verdicts are the published ones.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _bisect(b: dict[str, Any]) -> str:
    """The commit to blame: NEW itself when it is the only commit since BASE, else the `rnnbench bisect` command."""
    n = b.get("commits")
    if n == 1:
        return (
            f'<div id="bisect"><p>NEW (<code>{_cell_html(str(b["new"])[:12])}</code>) is the only commit since BASE: '
            "it is the one that made these cases slower.</p></div>"
        )
    between = f"{n} commits lie" if isinstance(n, int) else "More than one commit may lie"
    return (
        f'<div id="bisect"><p>{between} between BASE and NEW: to find the one that made these cases slower, run '
        f"from a checkout:</p><pre><code>{_cell_html(b['command'])}</code></pre></div>"
    )


def render(night: Night, links: Links = Links(), generated: str | None = None) -> str:
    """The landing page as one HTML document."""
    run, m, v = night.run, night.run["machine"], night.verdicts
    generated = generated or datetime.now(timezone.utc).isoformat(timespec="seconds")
    counts = {s: sum(r["status"] == s for r in run["records"]) for s in ("ok", "failed", "skipped")}
    shards = run.get("merged_from") or []
    regs, imps, noisy = night.regressions, night.improvements, too_noisy(v)
    summary = (
        f'<span class="{"bad" if regs else "good"}">{len(regs)} regression{"s" * (len(regs) != 1)}</span>, '
        f"{len(imps)} improvement{'s' * (len(imps) != 1)}, {len(noisy)} too noisy to judge, "
        f"{len(night.winners)} winner change{'s' * (len(night.winners) != 1)}, "
        f'<span class="{"bad" if night.failed else "good"}">{len(night.failed)} failed case'
        f"{'s' * (len(night.failed) != 1)}</span>"
    )
    links_html = "".join(
        f'<a href="{html.escape(href)}">{label}</a>'
        for label, href in (
            ("Full rnnbench report", links.report), ("asv dashboard", links.asv),
            ("Regression check output", links.check), ("Verdicts (JSON)", links.verdicts),
            ("Regressions feed (Atom)", links.feed),
        )
        if href
    )  # fmt: skip
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rnnbench nightly: {_cell_html(m.get('machine'))}</title><style>{_CSS}</style>"
        + (f'<link rel="alternate" type="application/atom+xml" href="{html.escape(links.feed)}">' if links.feed else "")
        + "</head><body>",
        f"<h1>rnnbench nightly: <code>{_cell_html(m.get('machine'))}</code></h1>",
        f"<nav>{links_html}</nav>",
        f'<p id="run" data-run-id="{_cell_html(run["run_id"])}">Run <code>{_cell_html(run["run_id"][:12])}</code> of commit '
        f"<code>{_cell_html((m.get('git_commit') or '-')[:12])}</code>, preset <code>{_cell_html(run.get('preset'))}</code>, "
        f"started {_cell_html(run['created'])}, finished {_cell_html(run.get('finished'))}; "
        f"{len(shards) or 1} shard document{'s' * ((len(shards) or 1) != 1)}; {counts['ok']} cases measured, "
        f"{counts['failed']} failed, {counts['skipped']} not applicable.</p>",
        f'<p class="summary" id="summary">{summary}; {len(v["cases"])} cases judged (threshold '
        f"{float(v['threshold']):.0%}).</p>",
    ]
    if v.get("previous") is None:
        parts.append(
            "<p>This is the first run of this machine class: there is no previous night to judge it against.</p>"
        )
    parts.append(_pairing(v))
    parts.append('<section id="regressions"><h2>Regressions</h2>')
    parts.append(_findings(regs) if regs else "<p>None published.</p>")
    if v.get("bisect"):
        parts.append(_bisect(v["bisect"]))
    parts.append('</section><section id="improvements"><h2>Improvements</h2>')
    parts.append(_findings(imps) if imps else "<p>None published.</p>")
    parts.append('</section><section id="noisy"><h2>Too noisy to judge</h2>')
    if noisy:
        parts.append(
            "<p>These cases moved within the noise of their method: no verdict is published for them. "
            "A history verdict needs the case's band (its MDE) no wider than the threshold.</p>"
        )
        parts.append(
            _html_table(["verdict", "change", "mde", "note", "case"],
                        [[c["verdict"], change(c), percent(c.get("mde")), c.get("note") or "", c["key"]] for c in noisy])
        )  # fmt: skip
    else:
        parts.append("<p>None.</p>")
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
    parts.append('</section><section id="mde"><h2>Smallest change this night could detect, per case</h2>')
    parts.append(
        "<p>The minimum detectable effect (MDE) of each judged case: paired, the change its interval would flag "
        "with 80% power; from history, its prediction band's half-width.</p>"
    )
    parts.append(
        _html_table(["case", "verdict", "method", "mde"],
                    [[c["key"], c["verdict"], c["method"], percent(c.get("mde"))] for c in v["cases"]])
    )  # fmt: skip
    parts.append('</section><section id="machine"><h2>Machine fingerprint</h2>')
    fp_rows: list[list[object]] = []
    for k, val in m.items():
        if isinstance(val, dict):
            val = ", ".join(f"{a} {b}" for a, b in val.items())
        elif isinstance(val, list):
            val = ", ".join(map(str, val))
        fp_rows.append([k, val])
    parts.append(_html_table(["field", "value"], fp_rows))
    if shards:
        parts.append("<h3>Shards</h3>")
        parts.append(
            _html_table(
                ["shard", "host", "cases", "started", "finished"],
                [[s["shard"], s.get("hostname"), s["records"], s["created"], s.get("finished")] for s in shards],
            )
        )
    methods = v.get("methods") or {}
    parts.append(
        f"</section><p><small>Generated {_cell_html(generated)} by <code>rnnbench landing</code> from "
        f"<code>verdicts.json</code> (written {_cell_html(v.get('generated'))}). Paired: "
        f"{_cell_html(methods.get('paired', '-'))}. History: {_cell_html(methods.get('history', '-'))}.</small></p>"
        "</body></html>"
    )
    return "\n".join(parts) + "\n"


def write_landing(night: Night, out: Path, links: Links = Links()) -> Path:
    """Write `out/index.html`; links whose target is missing under `out` are left out."""
    out.mkdir(parents=True, exist_ok=True)
    present = Links(**{name: (href if href and (out / href).exists() else None) for name, href in vars(links).items()})
    page = out / "index.html"
    page.write_text(render(night, present), encoding="utf-8")
    return page
