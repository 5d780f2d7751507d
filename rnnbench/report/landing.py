"""The published landing page: what last night found, in one static HTML file.

This module owns the page the nightly job publishes at the root of its site,
rendered from the night's verdicts document (`SITE/verdicts.json`,
`rnnbench.analysis.verdicts`; the verdicts themselves come from
`rnnbench.judge`): whether the night was paired and why, the published
regressions and improvements with their ratio, interval, method and both
commits/environments, the cases too noisy to judge, each case's smallest
detectable change (MDE), and, where a paired night found regressions between
two commits, the exact `rnnbench bisect` command. From the history it adds
what the verdicts do not hold: the formulation winners that changed since the
previous run, the cases that failed, and the machine fingerprint; a columnar
history (`analysis.columnar`) gives the night and the one before it from
their stored document headers and rows, without a run document, and a
results folder of run documents is read document by document. The page
has inline CSS, no scripts and only relative links, so it reads the same from
the file system (offline) and from GitHub Pages. Everything taken from result
files is HTML-escaped.
"""

from __future__ import annotations

import html
import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnbench.analysis import columnar
from rnnbench.analysis.frame import SkippedFileWarning
from rnnbench.errors import UsageError
from rnnbench.judge.rules import fastest, resolve_winner
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
from rnnbench.sweep.nightly import NIGHTS_DIR
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


def _groups(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[list[float]]]]:
    """group (the key with its formulation starred) -> formulation -> rounds of samples, over the ok
    records of groups with at least two formulations."""
    groups: dict[str, dict[str, list[list[float]]]] = {}
    for r in records:
        if r["status"] == "ok" and r.get("median_s"):
            rounds = r.get("round_samples_s") or [r.get("samples_s") or [r["median_s"]]]
            groups.setdefault(_group(r["key"], r["formulation"]), {})[r["formulation"]] = rounds
    return {g: alts for g, alts in groups.items() if len(alts) >= 2}


def winner_changes(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> list[WinnerChange]:
    """The groups whose fastest formulation changed between two runs' records, named only when both
    winners' leads are resolved (`resolve_winner`: the interval of each other formulation's time over
    the winner's excludes 1); a tie on either side is no change of winner. Only the groups whose
    fastest differs are bootstrapped (`fastest`): a year-sized night has thousands of groups."""
    old, new = _groups(before), _groups(after)
    changes: list[WinnerChange] = []
    for group in sorted(set(old) & set(new)):
        if fastest(old[group]) == fastest(new[group]):
            continue
        a = resolve_winner(new[group])
        if a.winner is None:
            continue  # a tie tonight: no change of winner, whatever the previous night resolved
        b = resolve_winner(old[group])
        if b.winner is not None and b.winner != a.winner:
            changes.append(WinnerChange(group, b.winner, a.winner, a.lead))
    return changes


def last_night(history: Path, verdicts: dict[str, Any], run: Path | None = None) -> Night:
    """The run `verdicts` judged (or `run`), found in `history`, with the previous run of its machine class
    for winner changes; UsageError when the history does not hold it.

    `history` is a columnar history (`analysis.columnar`; or the nightly's HISTORY folder, whose
    `nights/` is one): the night is found by its run_id among the stored documents' headers, newest first,
    and only it and the night before it are read. Or a results folder of run documents (`runs/<machine>/`),
    every one of which is read.
    """
    wanted = str(verdicts["night"].get("run_id"))
    store = next((p for p in (Path(history), Path(history) / NIGHTS_DIR) if columnar.is_history(p)), None)
    found = _from_store(store, verdicts, run) if store is not None else _from_documents(Path(history), wanted, run)
    newest_path, newest, previous = found
    winners = winner_changes(previous["records"], newest["records"]) if previous is not None else []
    failed = [(r["key"], r.get("error") or "") for r in newest["records"] if r["status"] == "failed"]
    return Night(newest_path, newest, previous, verdicts, winners, failed)


Documents = tuple[Path, dict[str, Any], dict[str, Any] | None]  # the night's path and run, the previous run


def _check(newest: dict[str, Any], wanted: str) -> None:
    if newest["run_id"] != wanted:
        raise UsageError(f"the verdicts judge run {wanted[:12]}, not {newest['run_id'][:12]}: write them for this run")


def _from_documents(history: Path, wanted: str, run: Path | None) -> Documents:
    """The night and the previous run of its machine class among every run document under `history/runs`."""
    docs = [(p, d) for p, d in iter_documents(history) if not d.get("shard")]  # merged or unsharded runs only
    if run is not None:
        newest_path, newest = Path(run), read_document(Path(run))
    else:
        found = [(p, d) for p, d in docs if d["run_id"] == wanted]
        if not found:
            raise UsageError(
                f"the run the verdicts judge ({wanted[:12]}) is not among the merged runs in {history}/runs"
            )
        newest_path, newest = found[0]
    _check(newest, wanted)
    cls = machine_class(newest["machine"])
    earlier = [
        d for _, d in docs
        if d["run_id"] != newest["run_id"] and machine_class(d["machine"]) == cls and d["created"] < newest["created"]
    ]  # fmt: skip
    return newest_path, newest, max(earlier, key=lambda d: d["created"]) if earlier else None


# what the page and the winners read of a night's rows: the record fields of the same names
_RECORD_COLUMNS = ("key", "formulation", "status", "error", "median_s", "samples_s", "round_samples_s")


def _stored_run(night: columnar.Night, header: dict[str, Any]) -> dict[str, Any]:
    """A stored night as a run document: its header, and its rows as records (the fields the page reads)."""
    rows = columnar.read_nights([night], columns=[*_RECORD_COLUMNS, "metric"])
    if "metric" in rows:
        rows = rows[rows["metric"].fillna("time").eq("time")]
    rows = rows.reindex(columns=list(_RECORD_COLUMNS))
    missing = ["error", "median_s"]
    rows[missing] = rows[missing].astype(object).where(rows[missing].notna(), None)  # a document's null, not NaN
    return header | {"records": rows.to_dict("records")}


def _skipped(exc: Exception) -> None:
    warnings.warn(str(exc), SkippedFileWarning, stacklevel=2)  # an unreadable night is no night: say so, go on


def _from_store(store: Path, verdicts: dict[str, Any], run: Path | None) -> Documents:
    """The night and the previous night of its machine class in a columnar history: the stored headers are
    read newest first (of the verdicts' machine first), and the rows of those two nights only."""
    wanted = str(verdicts["night"].get("run_id"))
    if run is not None:
        newest_path, newest = Path(run), read_document(Path(run))
    else:
        machine = verdicts.get("machine")
        search = itertools.chain(columnar.newest_documents(store, str(machine), _skipped) if machine else (),
                                 columnar.newest_documents(store, on_corrupt=_skipped))  # fmt: skip
        hit = next(((n, h) for n, h in search if h.get("run_id") == wanted and not h.get("shard")), None)
        if hit is None:
            raise UsageError(f"the run the verdicts judge ({wanted[:12]}) is not among the nights in {store}")
        newest_path, newest = hit[0].summary, _stored_run(*hit)
    _check(newest, wanted)
    cls = machine_class(newest["machine"])
    for night, header in columnar.newest_documents(store, str(newest["machine"].get("machine")), _skipped):
        if header.get("shard") or header.get("run_id") == newest["run_id"]:
            continue
        if machine_class(header.get("machine") or {}) == cls and str(header.get("created")) < str(newest["created"]):
            return newest_path, newest, _stored_run(night, header)
    return newest_path, newest, None


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _head(night: Night, links: Links) -> list[str]:
    """The page's head, title, links and the run it shows, up to the summary."""
    run, m = night.run, night.run["machine"]
    counts = {s: sum(r["status"] == s for r in run["records"]) for s in ("ok", "failed", "skipped")}
    shards = len(run.get("merged_from") or []) or 1
    links_html = "".join(
        f'<a href="{html.escape(href)}">{label}</a>'
        for label, href in (
            ("Full rnnbench report", links.report), ("asv dashboard", links.asv),
            ("Regression check output", links.check), ("Verdicts (JSON)", links.verdicts),
            ("Regressions feed (Atom)", links.feed),
        )
        if href
    )  # fmt: skip
    feed = f'<link rel="alternate" type="application/atom+xml" href="{html.escape(links.feed)}">' if links.feed else ""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rnnbench nightly: {_cell_html(m.get('machine'))}</title><style>{_CSS}</style>{feed}</head><body>",
        f"<h1>rnnbench nightly: <code>{_cell_html(m.get('machine'))}</code></h1>",
        f"<nav>{links_html}</nav>",
        f'<p id="run" data-run-id="{_cell_html(run["run_id"])}">Run <code>{_cell_html(run["run_id"][:12])}</code> of commit '
        f"<code>{_cell_html((m.get('git_commit') or '-')[:12])}</code>, preset <code>{_cell_html(run.get('preset'))}</code>, "
        f"started {_cell_html(run['created'])}, finished {_cell_html(run.get('finished'))}; "
        f"{_plural(shards, 'shard document')}; {counts['ok']} cases measured, "
        f"{counts['failed']} failed, {counts['skipped']} not applicable.</p>",
    ]


def _summary(night: Night) -> str:
    v, regs, failed = night.verdicts, night.regressions, night.failed
    return (
        f'<p class="summary" id="summary"><span class="{"bad" if regs else "good"}">{_plural(len(regs), "regression")}'
        f"</span>, {_plural(len(night.improvements), 'improvement')}, {len(too_noisy(v))} too noisy to judge, "
        f"{_plural(len(night.winners), 'winner change')}, "
        f'<span class="{"bad" if failed else "good"}">{_plural(len(failed), "failed case")}</span>; '
        f"{len(v['cases'])} cases judged (threshold {float(v['threshold']):.0%}).</p>"
    )


def _noisy(v: dict[str, Any]) -> str:
    noisy = too_noisy(v)
    if not noisy:
        return "<p>None.</p>"
    return (
        "<p>These cases moved within the noise of their method: no verdict is published for them. "
        "A history verdict needs the case's band (its MDE) no wider than the threshold.</p>\n"
        + _html_table(["verdict", "change", "mde", "note", "case"],
                      [[c["verdict"], change(c), percent(c.get("mde")), c.get("note") or "", c["key"]] for c in noisy])
    )  # fmt: skip


def _winners(winners: list[WinnerChange]) -> str:
    if not winners:
        return "<p>No winner changed.</p>"
    rows: list[list[object]] = [
        [w.before, w.after, "-" if w.lead is None else f"{w.lead:.2f}x", w.group] for w in winners
    ]
    return _html_table(["before", "now", "lead now", "case (* = formulation)"], rows)


def _machine(run: dict[str, Any]) -> str:
    """The machine fingerprint, field by field, and the shards the run was merged from."""
    fp_rows: list[list[object]] = []
    for k, val in run["machine"].items():
        if isinstance(val, dict):
            val = ", ".join(f"{a} {b}" for a, b in val.items())
        elif isinstance(val, list):
            val = ", ".join(map(str, val))
        fp_rows.append([k, val])
    out = _html_table(["field", "value"], fp_rows)
    if shards := run.get("merged_from") or []:
        out += "\n<h3>Shards</h3>\n" + _html_table(
            ["shard", "host", "cases", "started", "finished"],
            [[s["shard"], s.get("hostname"), s["records"], s["created"], s.get("finished")] for s in shards],
        )
    return out


def render(night: Night, links: Links = Links(), generated: str | None = None) -> str:
    """The landing page as one HTML document."""
    v = night.verdicts
    generated = generated or datetime.now(timezone.utc).isoformat(timespec="seconds")
    regs, imps = night.regressions, night.improvements
    parts = [*_head(night, links), _summary(night)]
    if v.get("previous") is None:
        parts.append(
            "<p>This is the first run of this machine class: there is no previous night to judge it against.</p>"
        )
    parts += [_pairing(v), '<section id="regressions"><h2>Regressions</h2>']
    parts.append(_findings(regs) if regs else "<p>None published.</p>")
    if v.get("bisect"):
        parts.append(_bisect(v["bisect"]))
    parts.append('</section><section id="improvements"><h2>Improvements</h2>')
    parts.append(_findings(imps) if imps else "<p>None published.</p>")
    parts += ['</section><section id="noisy"><h2>Too noisy to judge</h2>', _noisy(v)]
    parts += ['</section><section id="winners"><h2>Winners that changed since the previous run</h2>']
    parts.append(_winners(night.winners))
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
    parts += ['</section><section id="machine"><h2>Machine fingerprint</h2>', _machine(night.run)]
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
