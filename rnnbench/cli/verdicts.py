"""`rnnbench verdicts` (the night's verdicts.json) and `rnnbench verdicts-render` (its text, markdown and Atom)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rnnbench.analysis.frame import one_line_warnings
from rnnbench.analysis.verdicts import BASELINE_NIGHTS, build_verdicts, read_verdicts, write_verdicts
from rnnbench.cli.inputs import load_results
from rnnbench.cli.options import add_threshold_flag, input_path, int_range, nonempty, output_dir, output_file
from rnnbench.errors import UsageError
from rnnbench.report.verdicts import published_regressions, render_atom, render_markdown, render_text
from rnnbench.sweep.store import read_document

__all__ = ["add_parser", "run", "run_render"]

RENDERERS = ("text", "markdown", "atom")


def _document(path: str, role: str) -> dict[str, Any]:
    try:
        doc = read_document(Path(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--paired {role}: {str(exc).splitlines()[0]}") from None
    if doc.get("shard"):
        raise UsageError(f"--paired {role}: {path} is one shard's document; give the merged one (rnnbench merge)")
    return doc


def run(args: argparse.Namespace) -> int:
    paired = (_document(args.paired[0], "BASE"), _document(args.paired[1], "NEW")) if args.paired else None
    with one_line_warnings():
        # a machine's asv results share its history folder: read enough files to hold N + 1 runner nights
        frame = load_results([args.history], last=3 * (args.baseline + 1), samples=False)
        doc = build_verdicts(
            frame, paired=paired, baseline_nights=args.baseline, threshold=args.threshold, machine=args.machine,
            repo=Path(args.repo) if args.repo else None,
        )  # fmt: skip
    write_verdicts(doc, args.out)
    if args.archive:
        night = doc["night"]
        stamp = str(night["date"])[:19].replace("-", "").replace(":", "")
        write_verdicts(doc, args.archive / _safe(doc["machine"]) / f"{stamp}-{str(night['run_id'])[:8]}.json.gz")
    counts = ", ".join(f"{n} {v}" for v, n in doc["counts"].items()) or "no case judged"
    print(f"rnnbench: {doc['pairing']['reason']}; {counts}; verdicts: {args.out}")
    for c in published_regressions(doc):
        print(f"REGRESSION {c['ratio'] - 1:+.1%} ({c['method']}) {c['key']}", file=sys.stderr)
    return 1 if args.fail_on_regression and published_regressions(doc) else 0


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _verdict_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted([*p.rglob("*.json"), *p.rglob("*.json.gz")]) if p.is_dir() else [p]
    return files


def run_render(args: argparse.Namespace) -> int:
    files = _verdict_files(args.paths)
    if args.format != "atom" and len(files) != 1:
        raise UsageError(f"--format {args.format} renders one verdicts.json, got {len(files)} files")
    docs = [read_verdicts(f) for f in files]
    if args.format == "atom":
        text = render_atom(docs, link=args.link)
    elif args.format == "markdown":
        text = render_markdown(docs[0], page=args.link if args.link != "index.html" else None)
    else:
        text = render_text(docs[0])
    if args.out:
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.out)
    else:
        sys.stdout.write(text)
    return 1 if args.fail_on_regression and any(published_regressions(d) for d in docs[:1]) else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verdicts",
        help="the night's verdicts.json: paired verdicts (--paired BASE NEW) and drift from history, per case",
        description=(
            "Judge the newest night in HISTORY (or NEW, with --paired) and write every judged case to one "
            "verdicts.json: with --paired, each case of NEW against BASE (interleaved, paired), and that verdict "
            "is published; every case is also judged against the spread of its previous N nights (history), "
            "where a band wider than the threshold is 'too noisy to judge from history', never a regression."
        ),
    )
    p.add_argument("history", metavar="HISTORY", type=input_path, help="a history folder (rnnbench history) or results")
    p.add_argument("--out", required=True, type=output_file((".json",)), help="the verdicts file (SITE/verdicts.json)")
    p.add_argument(
        "--paired", nargs=2, metavar=("BASE", "NEW"), type=input_path,
        help="the paired night's two merged run documents: BASE (the previous night re-measured) and NEW (tonight)",
    )  # fmt: skip
    p.add_argument(
        "--baseline", type=int_range(2, 1000), default=BASELINE_NIGHTS, metavar="N",
        help=f"previous nights a case's drift is judged against (default {BASELINE_NIGHTS})",
    )  # fmt: skip
    add_threshold_flag(p)
    p.add_argument("--machine", type=nonempty, help="the machine to judge (default: the one of the newest night)")
    p.add_argument(
        "--repo", type=input_path,
        help="the git checkout that holds BASE's and NEW's commits, to count those between them (default: rnnbench's own)",
    )  # fmt: skip
    p.add_argument("--archive", type=output_dir, help="also keep a gzipped copy in DIR/<machine>/ (the feed reads all)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if a regression is published")
    p.set_defaults(func=run)

    r = sub.add_parser(
        "verdicts-render",
        help="render verdicts.json as text (regressions.txt), markdown (job summary, issue) or an Atom feed",
    )
    r.add_argument(
        "paths", nargs="+", metavar="VERDICTS", type=input_path,
        help="a verdicts.json (text, markdown); for atom, any number of them or folders holding them",
    )  # fmt: skip
    r.add_argument("--format", choices=RENDERERS, default="text")
    r.add_argument(
        "--link", type=nonempty, default="index.html",
        help="the landing page's address from the feed or summary (default index.html, relative)",
    )  # fmt: skip
    r.add_argument("--out", type=output_file(), help="write here (whole or not at all) instead of stdout")
    r.add_argument("--fail-on-regression", action="store_true", help="exit 1 if the verdicts publish a regression")
    r.set_defaults(func=run_render)
