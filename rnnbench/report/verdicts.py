"""Renderings of a night's verdicts document: `regressions.txt`, the job summary, the Atom feed.

This module owns every text the nightly publishes besides the landing page
(`rnnbench.report.landing`, which reads the same document), as pure
functions of one or more verdicts documents (`rnnbench.analysis.verdicts`):
nothing is judged here, so the page, the text, the summary and the feed
cannot disagree.

- `render_text`: plain text (the site's `regressions.txt`);
- `render_markdown`: the workflow's job summary and the GitHub issue body;
- `render_atom`: an Atom 1.0 feed with one entry per night that published
  regressions (newest first), linking to the landing page, as asv's
  `regressions.xml` has one entry per regression (`asv.feed`); built with the
  standard library's ElementTree, so it is well-formed XML by construction.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from rnnbench.display import format_markdown, format_table

__all__ = [
    "FEED_ENTRIES",
    "published_improvements",
    "published_regressions",
    "render_atom",
    "render_markdown",
    "render_text",
    "too_noisy",
]

ATOM = "http://www.w3.org/2005/Atom"
FEED_ENTRIES = 50  # nights a feed lists, newest first
TOO_NOISY_WORDS = ("too noisy", "too noisy to judge from history")

Doc = Mapping[str, Any]


def published_regressions(doc: Doc) -> list[dict[str, Any]]:
    """The published regressions: exactly the cases whose verdict is `regression`."""
    return [c for c in doc["cases"] if c["verdict"] == "regression"]


def published_improvements(doc: Doc) -> list[dict[str, Any]]:
    return [c for c in doc["cases"] if c["verdict"] == "improvement"]


def too_noisy(doc: Doc) -> list[dict[str, Any]]:
    return [c for c in doc["cases"] if c["verdict"] in TOO_NOISY_WORDS]


def change(c: Mapping[str, Any]) -> str:
    r = c.get("ratio")
    return f"{r - 1:+.1%}" if isinstance(r, (int, float)) and math.isfinite(r) else "-"


def interval(c: Mapping[str, Any]) -> str:
    lo, hi = c.get("ci_low"), c.get("ci_high")
    return f"[{lo:.3f}, {hi:.3f}]" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else "-"


def percent(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def side(s: Mapping[str, Any] | None) -> str:
    """`commit8 (lock digest)` of one side, `-` where unknown."""
    if not s:
        return "-"
    commit = (s.get("commit") or "-")[:8]
    lock = s.get("lock_digest")
    return f"{commit} (lock {lock[:8]})" if lock else f"{commit} (no lock)"


FINDING_HEADERS = ["change", "interval of ratio", "method", "base", "new", "mde", "case"]


def finding_row(c: Mapping[str, Any]) -> list[Any]:
    return [
        change(c),
        interval(c),
        c["method"],
        side(c.get("base")),
        side(c.get("new")),
        percent(c.get("mde")),
        c["key"],
    ]


def headline(doc: Doc) -> str:
    regs, imps, noisy = published_regressions(doc), published_improvements(doc), too_noisy(doc)
    night = doc["night"]
    return (
        f"rnnbench nightly {doc['machine']}, run {str(night.get('run_id'))[:12]} of commit "
        f"{(night.get('commit') or '-')[:12]}: {len(regs)} regression{'s' * (len(regs) != 1)}, "
        f"{len(imps)} improvement{'s' * (len(imps) != 1)}, {len(noisy)} too noisy to judge, "
        f"{len(doc['cases'])} cases judged (threshold {doc['threshold']:.0%})"
    )


def _counts(doc: Doc) -> str:
    return ", ".join(f"{n} {v}" for v, n in doc["counts"].items()) or "no case judged"


def render_text(doc: Doc) -> str:
    """The night's verdicts as plain text: the published regressions and improvements, then the counts."""
    pairing = doc["pairing"]
    lines = [headline(doc), f"pairing: {pairing['reason']}"]
    if pairing.get("changes"):
        lines.append(f"changes: {'; '.join(pairing['changes'])}")
    lines.append(f"verdicts: {_counts(doc)}")
    for title, cases in (("regressions", published_regressions(doc)), ("improvements", published_improvements(doc))):
        lines += ["", f"{title} ({len(cases)}):"]
        if cases:
            lines.append(format_table(FINDING_HEADERS, [finding_row(c) for c in cases]))
    if doc.get("bisect") and doc["bisect"].get("commits") != 1:
        lines += ["", "to find the commit:", f"  {doc['bisect']['command']}"]
    return "\n".join(lines) + "\n"


def render_markdown(doc: Doc, page: str | None = None) -> str:
    """The night's verdicts as GitHub markdown (the job summary, an issue's body); `page` links the landing page."""
    regs, imps, noisy = published_regressions(doc), published_improvements(doc), too_noisy(doc)
    pairing = doc["pairing"]
    parts = [f"### {headline(doc)}", "", f"**Pairing:** {pairing['reason']}"]
    if pairing.get("changes"):
        parts += ["", "**Changes:** " + "; ".join(f"`{c}`" for c in pairing["changes"])]
    parts += ["", f"Verdicts: {_counts(doc)}"]
    if page:
        parts += ["", f"[The night's landing page]({page})"]
    for title, cases in (("Regressions", regs), ("Improvements", imps)):
        parts += ["", f"#### {title} ({len(cases)})", ""]
        parts.append(format_markdown(FINDING_HEADERS, [finding_row(c) for c in cases]) if cases else "None.")
    if noisy:
        parts += ["", f"{len(noisy)} cases were too noisy to judge (see the landing page for each one's MDE)."]
    if doc.get("bisect") and doc["bisect"].get("commits") != 1:
        parts += ["", "Find the commit:", "", "```", doc["bisect"]["command"], "```"]
    return "\n".join(parts) + "\n"


def _entry_id(doc: Doc) -> str:
    night = doc["night"]
    day = str(night.get("date") or doc["generated"])[:10]
    return f"tag:rnnbench,{day}:{doc['machine']}/{night.get('run_id')}"


def render_atom(docs: Sequence[Doc], link: str = "index.html", title: str = "rnnbench nightly regressions") -> str:
    """An Atom 1.0 feed of the nights in `docs` that published regressions, newest first (at most
    `FEED_ENTRIES`); each entry links to `link` (the landing page; relative to the feed, or absolute)."""
    nights = sorted((d for d in docs if published_regressions(d)), key=lambda d: str(d["night"].get("date")),
                    reverse=True)[:FEED_ENTRIES]  # fmt: skip
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}title").text = title
    machines = sorted({str(d["machine"]) for d in docs}) or ["rnnbench"]
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"tag:rnnbench,2026:{','.join(machines)}/regressions"
    newest = max((str(d["generated"]) for d in docs), default="1970-01-01T00:00:00+00:00")
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = newest
    ET.SubElement(feed, f"{{{ATOM}}}link", href=link)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "rnnbench nightly"
    for d in nights:
        regs = published_regressions(d)
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = (
            f"{len(regs)} regression{'s' * (len(regs) != 1)} on {d['machine']}, "
            f"commit {(d['night'].get('commit') or '-')[:12]}"
        )
        ET.SubElement(entry, f"{{{ATOM}}}id").text = _entry_id(d)
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = str(d["generated"])
        ET.SubElement(entry, f"{{{ATOM}}}link", href=link)
        lines = [d["pairing"]["reason"], *d["pairing"].get("changes", []),
                 *(f"{change(c)} {interval(c)} {c['method']}: {c['key']}" for c in regs)]  # fmt: skip
        if d.get("bisect"):
            lines.append(d["bisect"]["command"])
        ET.SubElement(entry, f"{{{ATOM}}}content", type="text").text = "\n".join(lines)
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"
