"""The static report: what each section shows, the sentence that states its finding, and the HTML.

This module owns choosing data for every chart (which runs, which groups,
how many charts at most), computing the one-sentence findings from the
numbers, and writing a self-contained site: `index.html` with inline CSS and
`img/*.png` next to it, no scripts and no network, so it opens from the file
system on a machine with no internet. Everything that comes from result
files (machine names, errors, keys) is HTML-escaped before it is written.
Drawing itself lives in `rnnbench.charts`.

The output folder is the report's own: `build_report` writes only into a
new or empty folder, or one holding the `.rnnbench-report` marker an earlier
report left there (only then does it remove the old `img/*.png`), and
refuses anything else, so a typo in `--out` cannot delete someone's files.
`index.html` is replaced atomically.
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm import tqdm

from rnnbench.analysis.history import STEP_HEADERS, StepChange, detect, series, step_row, version_change
from rnnbench.errors import UsageError
from rnnbench.judge.rules import WINNER_CONFIDENCE, Winner, resolve_winner, rounds_of
from rnnbench.measure.roofline import case_bytes
from rnnbench.report import charts
from rnnbench.sweep.grid import PRIMARY_MODE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MARKER", "MAX_CHARTS", "Section", "build_report", "check_out_dir"]

MARKER = ".rnnbench-report"  # in a folder a report wrote, so a later report may replace its files

MAX_CHARTS = 24  # per section: more charts than this is a wall nobody reads
MAX_GRID = 10  # rows/columns per heatmap, and shapes per bar chart, so labels stay readable


@dataclass
class Section:
    slug: str
    title: str
    finding: str
    intro: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)  # (file name, alt/caption)
    tables: list[str] = field(default_factory=list)  # already-escaped HTML
    notes: list[str] = field(default_factory=list)


Job = Callable[[], Path]
_Group = TypeVar("_Group")


def _chart_jobs(
    sec: Section, drawable: Sequence[_Group], limit: int, chart: Callable[[int, _Group], tuple[str, str, Job]]
) -> list[Job]:
    """The jobs drawing the first `limit` groups of `drawable`, `chart(n, group)` giving the n-th chart's
    (file name, title, job); a note on `sec` counts the groups left out, so a capped section says it is capped."""
    jobs: list[Job] = []
    for n, group in enumerate(drawable[:limit]):
        name, title, job = chart(n, group)
        sec.images.append((name, title))
        jobs.append(job)
    if len(drawable) > limit:
        sec.notes.append(f"{len(drawable) - limit} more groups not drawn (--max-charts {limit}).")
    return jobs


def _e(value: object) -> str:
    return html.escape(
        "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value), quote=True
    )


def _slug(*parts: object) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")[:80] or "chart"


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest successful measurement of every case on every machine."""
    ok = frame[frame["status"].eq("ok") & frame["median_s"].notna()]
    return ok.sort_values("date", kind="stable", na_position="first").drop_duplicates(["machine", "key"], keep="last")


def _pct(x: float) -> str:
    return f"{x:.0%}" if abs(x) >= 0.095 else f"{x:.1%}"


def _shape(r: Any) -> str:
    return f"B{r.batch} H{r.hidden} T{r.seq_len}"


# -- winner maps ------------------------------------------------------------------------------------

_MAP_GROUP = ["machine", "framework", "device", "variant", "pass", "mode", "dtype", "seq_len", "layers"]


def _winner_maps(latest: pd.DataFrame, img: Path, limit: int) -> tuple[Section, list[Job]]:
    import pandas as pd  # lazy: pandas is heavy and only `.[report]` installs it

    sec = Section(
        "winners",
        "Winner maps: concat vs separate, and the fastest formulation",
        "",
        "For each machine, framework, device, cell, pass, mode, dtype and sequence length: the time ratio "
        "concat / separate over batch x hidden (below 1, blue: concat is faster), and which formulation is fastest, "
        "native included. Several input sizes for one cell are combined by their geometric mean.",
    )
    pairs: list[dict[str, Any]] = []
    win_count: dict[str, int] = {}
    groups = list(latest.groupby(_MAP_GROUP, dropna=False))
    drawable = []
    for ident, g in groups:
        piv = g.pivot_table(
            index=["batch", "hidden"],
            columns="formulation",
            values="median_s",
            aggfunc=lambda s: float(np.exp(np.log(s).mean())),
        )
        if "concat" in piv and "separate" in piv:
            both = piv[["concat", "separate"]].dropna()
            for (b, h), r in both.iterrows():
                pairs.append(
                    {
                        "batch": b,
                        "hidden": h,
                        "ratio": r["concat"] / r["separate"],
                        "where": f"{ident[1]} {ident[3]} B{b} H{h} T{ident[7]}",
                    }
                )
        verdicts = _cell_winners(g)
        for w in verdicts.values():
            name = w.winner or "tie"
            win_count[name] = win_count.get(name, 0) + 1
        if "concat" in piv and "separate" in piv:
            drawable.append((ident, piv, verdicts))
    drawable.sort(key=lambda t: -t[1].size)

    def chart(n: int, group: tuple[Any, pd.DataFrame, dict[tuple[Any, Any], Winner]]) -> tuple[str, str, Job]:
        ident, piv, verdicts = group
        machine, fw, dev, variant, pas, mode, dtype, t, layers = ident
        batches = sorted(piv.index.get_level_values(0).unique())[:MAX_GRID]
        hiddens = sorted(piv.index.get_level_values(1).unique())[:MAX_GRID]
        times = {f: piv[f].unstack("hidden").reindex(index=batches, columns=hiddens) for f in piv.columns}
        ratio = times["concat"] / times["separate"]
        labels = pd.DataFrame(
            [[verdicts[(b, h)].label if (b, h) in verdicts else None for h in hiddens] for b in batches],
            index=batches,
            columns=hiddens,
        )
        title = f"{fw} {dev} {variant} {pas} ({mode}, {dtype}, T={t}, layers={layers}) on {machine}"
        name = f"img/winners-{n:03d}-{_slug(fw, dev, variant, pas, mode, dtype, t, layers)}.png"
        return name, title, functools.partial(charts.winner_maps, ratio, times, title, img / name, labels)

    jobs = _chart_jobs(sec, drawable, limit, chart)
    sec.finding = (
        _concat_finding(pd.DataFrame(pairs))
        if pairs
        else ("No case was measured with both concat and separate, so there is no ratio to show.")
    )
    if win_count:
        sec.finding += _winner_finding(win_count)
    return sec, jobs


def _concat_finding(p: pd.DataFrame) -> str:
    """The winner maps' sentence on concat / separate, from one row per shape (`ratio`, `hidden`, `where`)."""
    wins = p[p["ratio"] < 1]
    med = float(p["ratio"].median())
    best, worst = p.loc[p["ratio"].idxmin()], p.loc[p["ratio"].idxmax()]
    # split at a hidden size that was measured (the lower median), so the sentence names a real size
    split = float(p["hidden"].sort_values().iloc[(len(p) - 1) // 2])
    small = p[p["hidden"] <= split]
    large = p[p["hidden"] > split]
    where = f"at hidden <= {split:g} it wins {int((small['ratio'] < 1).sum())} of {len(small)}" + (
        f", above {int((large['ratio'] < 1).sum())} of {len(large)}" if len(large) else ""
    )
    return (
        f"Concat beats separate on {len(wins)} of {len(p)} shapes (median time ratio {med:.2f}; "
        f"best {best['ratio']:.2f}x on {best['where']}, worst {worst['ratio']:.2f}x on {worst['where']}); {where}."
    )


def _winner_finding(win_count: dict[str, int]) -> str:
    """The winner maps' sentence on the fastest formulation: how often each won, ties counted apart."""
    total = sum(win_count.values())
    order = sorted(win_count.items(), key=lambda kv: -kv[1])
    return (
        " Fastest formulation per shape, named only where its lead is resolved "
        f"({WINNER_CONFIDENCE:.0%} interval of its lead excludes 1): "
        + ", ".join(f"{'a tie' if f == 'tie' else f} {n} of {total}" for f, n in order)
        + "."
    )


def _cell_winners(g: pd.DataFrame) -> dict[tuple[Any, Any], Winner]:
    """Per (batch, hidden): the fastest formulation if its lead is resolved, else the tie (see `resolve_winner`).

    Several input sizes in one cell are combined as the map combines them: each
    row's samples are scaled so its median sits at the cell's geometric mean.
    """
    out: dict[tuple[Any, Any], Winner] = {}
    for (b, h), cell in g.groupby(["batch", "hidden"]):
        rounds: dict[str, list[list[float]]] = {}
        for form, rows in cell.groupby("formulation"):
            centre = float(np.exp(np.log(rows["median_s"].astype(float)).mean()))
            rounds[str(form)] = [
                [s * centre / float(row["median_s"]) for s in r] for _, row in rows.iterrows() for r in rounds_of(row)
            ]
        if len(rounds) >= 2:
            out[(b, h)] = resolve_winner(rounds)
    return out


# -- scaling ----------------------------------------------------------------------------------------

_SCALE_GROUP = ["machine", "framework", "device", "variant", "pass", "mode", "dtype", "layers"]


def _per_step(g: pd.DataFrame, x: str, fixed: list[str]) -> tuple[pd.DataFrame | None, str]:
    """Seconds per step against `x` at the combination of `fixed` values with the most x values."""
    counts = g.groupby(fixed)[x].nunique()
    if counts.empty or counts.max() < 2:
        return None, ""
    at = counts.idxmax()
    at = at if isinstance(at, tuple) else (at,)
    sel = g
    for col, v in zip(fixed, at):
        sel = sel[sel[col] == v]
    data = sel.assign(per_step=sel["median_s"] / sel["seq_len"].astype(float)).pivot_table(
        index=x, columns="formulation", values="per_step", aggfunc="median"
    )
    letter = {"batch": "B", "hidden": "H", "seq_len": "T", "input_size": "I"}
    note = ", ".join(f"{letter[c]}={v}" for c, v in zip(fixed, at))
    return data.sort_index(), f"against {x} at {note}"


def _scaling(latest: pd.DataFrame, img: Path, limit: int) -> tuple[Section, list[Job]]:
    sec = Section(
        "scaling",
        "Scaling: time per step against sequence length and hidden size",
        "",
        "Median time of one call divided by the sequence length, one line per formulation, log axes. Each panel "
        "holds the other sizes fixed (named in its title) at the combination measured with the most values.",
    )
    slopes: dict[str, list[float]] = {}
    seq_change: dict[str, list[float]] = {}
    drawable = []
    for ident, g in latest.groupby(_SCALE_GROUP, dropna=False):
        by_seq, seq_note = _per_step(g, "seq_len", ["batch", "hidden"])
        by_hidden, hid_note = _per_step(g, "hidden", ["batch", "seq_len"])
        if by_seq is None and by_hidden is None:
            continue
        drawable.append((ident, by_seq, seq_note, by_hidden, hid_note))
        if by_hidden is not None:
            for form in by_hidden.columns:
                s = by_hidden[form].dropna()
                if len(s) >= 2:
                    slopes.setdefault(form, []).append(
                        float(np.polyfit(np.log(s.index.astype(float)), np.log(s.to_numpy()), 1)[0])
                    )
        if by_seq is not None:
            for form in by_seq.columns:
                s = by_seq[form].dropna()
                if len(s) >= 2:
                    seq_change.setdefault(form, []).append(float(s.iloc[-1] / s.iloc[0] - 1))

    def chart(n: int, group: tuple[Any, pd.DataFrame | None, str, pd.DataFrame | None, str]) -> tuple[str, str, Job]:
        ident, by_seq, seq_note, by_hidden, hid_note = group
        machine, fw, dev, variant, pas, mode, dtype, layers = ident
        title = f"time per step: {fw} {dev} {variant} {pas} ({mode}, {dtype}, layers={layers}) on {machine}"
        name = f"img/scaling-{n:03d}-{_slug(fw, dev, variant, pas, mode, dtype, layers)}.png"
        return name, title, functools.partial(charts.scaling, by_seq, seq_note, by_hidden, hid_note, title, img / name)

    jobs = _chart_jobs(sec, drawable, limit, chart)
    parts = []
    if slopes:
        parts.append(
            "time per step grows as hidden^k with median k = "
            + ", ".join(f"{float(np.median(v)):.2f} ({f})" for f, v in sorted(slopes.items()))
        )
    if seq_change:
        parts.append(
            "from the shortest to the longest sequence the time per step changes by "
            + ", ".join(f"{float(np.median(v)):+.0%} ({f})" for f, v in sorted(seq_change.items()))
            + " (median over groups)"
        )
    sec.finding = (
        ("; ".join(parts) + ".").capitalize()
        if parts
        else "No group was measured at two or more sequence lengths or hidden sizes."
    )
    return sec, jobs


# -- distance to the limit --------------------------------------------------------------------------


def _roofline(latest: pd.DataFrame, img: Path, limit: int) -> tuple[Section, list[Job]]:
    sec = Section(
        "limit",
        "Distance to the limit: a roofline of every case",
        "",
        "x: arithmetic intensity, the useful FLOPs of a case per byte of its memory traffic (in the model of "
        "rnnbench/measure/roofline.py: every time step re-reads its layer's weights, so small batches are "
        "memory-bound); y: achieved GFLOP/s. The flat ceiling is the machine's best measured GEMM rate on that "
        "device and dtype (best over the frameworks it measured), the sloped one the measured STREAM triad "
        "bandwidth times the intensity; dotted lines are each framework's own GEMM probe. A point's distance "
        "below the lower ceiling is what the formulation leaves on the table.",
    )
    jobs: list[Job] = []
    pts = latest[latest["gflops"].notna() & latest["flops"].notna()]
    fractions = []
    memory_bound = 0
    groups = list(pts.groupby(["machine", "device", "dtype"], dropna=False))
    for n, ((machine, dev, dtype), g) in enumerate(groups[:limit]):
        own = {str(fw): float(p) for fw, p in g.groupby("framework")["peak_gflops"].max().items() if p == p}
        best = g["machine_peak_gflops"].max() if "machine_peak_gflops" in g else float("nan")
        compute = float(best) if best == best else max(own.values(), default=None)
        bw_max = g["bandwidth_gbps"].max() if "bandwidth_gbps" in g else float("nan")
        bandwidth = float(bw_max) if bw_max == bw_max else None
        rows = g.to_dict("records")
        intensity = [
            float(r["flops"]) / case_bytes(str(r["cell"]), int(r["batch"]), int(r["input_size"]), int(r["hidden"]),
                                           int(r["seq_len"]), int(r["layers"]), str(r["dtype"]), r["pass"] == "train")
            for r in rows
        ]  # fmt: skip
        for r, ai in zip(rows, intensity):
            roof = min(c for c in (compute, bandwidth * ai if bandwidth else None) if c) if compute else None
            if roof:
                fractions.append((float(r["gflops"]) / roof, r))
                memory_bound += bool(bandwidth and compute and bandwidth * ai < compute)
        title = f"Roofline: {dev} {dtype} on {machine}"
        name = f"img/limit-{n:03d}-{_slug(dev, dtype)}.png"
        sec.images.append((name, title))
        data = g[["gflops", "formulation", "framework"]].copy()
        data["intensity"] = intensity
        jobs.append(functools.partial(charts.roofline, data, compute, bandwidth, own, title, img / name))
    if len(groups) > limit:
        sec.notes.append(f"{len(groups) - limit} more machine/device/dtype groups not drawn.")
    if fractions:
        fractions.sort(key=lambda t: t[0])
        best_f, top = fractions[-1]
        med = fractions[len(fractions) // 2][0]
        sec.finding = (
            f"The best case reaches {_pct(best_f)} of its roofline ({top['gflops']:.3g} GFLOP/s: {top['framework']} "
            f"{top['variant']} {top['formulation']}, B{top['batch']} H{top['hidden']} T{top['seq_len']}); the median "
            f"case reaches {_pct(med)}; {memory_bound} of {len(fractions)} cases sit under the bandwidth ceiling."
        )
    elif len(pts):
        sec.finding = f"{len(pts)} cases have a GFLOP/s figure but no measured peak was recorded, so there is no ceiling to compare with."
    else:
        sec.finding = "No case has a GFLOP/s figure."
    return sec, jobs


# -- history ----------------------------------------------------------------------------------------


def _chart_of(key: str, formulation: object) -> tuple[str, str]:
    """(line label, chart id) of a series: its formulation, and its key with the formulation replaced by `*`.

    The formulation comes from its column, not from a position in the key; a series
    with none (an asv benchmark that is not an rnnbench case) is a chart of its own.
    """
    parts = key.split("/")
    if not isinstance(formulation, str) or formulation not in parts:
        return key, key
    i = parts.index(formulation)
    return formulation, "/".join([*parts[:i], "*", *parts[i + 1 :]])


def _history(
    frame: pd.DataFrame, steps: list[StepChange], img: Path, limit: int, threshold: float
) -> tuple[Section, list[Job]]:
    import pandas as pd  # lazy: pandas is heavy and only `.[report]` installs it

    sec = Section(
        "history",
        "History: each case over commits, with detected step changes",
        "",
        "Median time per run (line) with its interquartile range (band), one line per formulation, runs in date "
        f"order. Triangles mark step changes of at least {threshold:.0%} found by asv's step detection "
        "(red up: regression, green down: improvement). asv results and runner documents are separate series.",
    )
    jobs: list[Job] = []
    step_at = {(s.machine, s.key, s.source, s.commit, s.date): s for s in steps}
    long = [(ident, g) for ident, g in series(frame) if len(g) >= 2]
    # one chart per case shape on one machine and source: its formulations share the axes
    charts_by: dict[tuple[str, str, str], list[tuple[str, pd.DataFrame]]] = {}
    shape_of: dict[str, str] = {}
    for (machine, key, source), g in long:
        form, shape_key = _chart_of(key, g["formulation"].iloc[0])
        shape_of[key] = shape_key
        charts_by.setdefault((machine, shape_key, source), []).append((form, g))
    has_step = {(s.machine, s.source, shape_of.get(s.key, s.key)) for s in steps}
    order = sorted(
        charts_by, key=lambda k: ((k[0], k[2], k[1]) not in has_step, -max(len(g) for _, g in charts_by[k]), k)
    )
    for n, ident in enumerate(order[:limit]):
        machine, shape_key, source = ident
        members = charts_by[ident]
        runs = pd.concat([g for _, g in members])
        when = runs.drop_duplicates(["commit", "date"]).sort_values("date")
        labels_at = {(c, d): i for i, (c, d) in enumerate(zip(when["commit"], when["date"]))}
        labels = [
            (str(c)[:8] if isinstance(c, str) else d.strftime("%Y-%m-%d %H:%M"))
            for c, d in zip(when["commit"], when["date"])
        ]
        lines: dict[str, pd.DataFrame] = {}
        marks: list[tuple[str, int, str]] = []
        for form, g in members:
            pos = [labels_at[(c, d)] for c, d in zip(g["commit"], g["date"])]
            q25 = g["q25_s"].fillna(g["median_s"] - g["iqr_s"].fillna(0) / 2)
            q75 = g["q75_s"].fillna(g["median_s"] + g["iqr_s"].fillna(0) / 2)
            lines[form] = pd.DataFrame(
                {"pos": pos, "median_s": g["median_s"].to_numpy(), "q25_s": q25.to_numpy(), "q75_s": q75.to_numpy()}
            )
            for c, d in zip(g["commit"], g["date"]):
                s = step_at.get((machine, g["key"].iloc[0], source, c, d.isoformat()))
                if s:
                    marks.append((form, labels_at[(c, d)], s.kind))
        versions = _version_marks(runs, labels_at)
        title = f"{shape_key.replace('/*/', ' / ')} on {machine} ({source})"
        name = f"img/history-{n:03d}-{_slug(shape_key)}.png"
        sec.images.append((name, title))
        jobs.append(functools.partial(charts.history, lines, labels, marks, title, img / name, versions))
    if len(order) > limit:
        sec.notes.append(f"{len(order) - limit} more histories not drawn (those with step changes come first).")
    if steps:
        reg = [s for s in steps if s.kind == "regression"]
        imp = [s for s in steps if s.kind == "improvement"]
        big = max(steps, key=lambda s: abs(s.ratio - 1))
        sec.finding = (
            f"{len(steps)} step changes in {len(long)} histories: {len(reg)} regressions and {len(imp)} improvements; "
            f"the largest is {big.ratio - 1:+.0%} on {big.key} ({big.machine}) at commit {(big.commit or '?')[:8]}."
        )
        sec.tables.append(_table(STEP_HEADERS, [step_row(s) for s in steps]))
    elif long:
        sec.finding = f"No step change of {threshold:.0%} or more in {len(long)} histories."
    else:
        sec.finding = "No case was measured more than once, so there is no history yet."
    return sec, jobs


def _version_marks(runs: pd.DataFrame, labels_at: dict[tuple[Any, Any], int]) -> list[tuple[int, str]]:
    """(position on the axis, 'torch 2.12.0 -> 2.13.0') wherever a framework version changed between runs."""
    ordered = runs.assign(_pos=[labels_at[(c, d)] for c, d in zip(runs["commit"], runs["date"])])
    ordered = ordered.sort_values("_pos").drop_duplicates("_pos")
    marks = []
    for (_, before), (_, after) in itertools.pairwise(ordered.iterrows()):
        change = version_change(before, after)
        if change:
            marks.append((int(after["_pos"]), change))
    return marks


# -- cross-framework --------------------------------------------------------------------------------


def _cross(latest: pd.DataFrame, img: Path, limit: int) -> tuple[Section, list[Job]]:
    sec = Section(
        "frameworks",
        "Cross-framework: the same case in every framework",
        "",
        "Median time of the same cell, pass, dtype and shape in each framework, in the mode its users normally run "
        "(PyTorch eager, TensorFlow and JAX compiled) where measured, one panel per formulation.",
    )
    lat = latest.assign(primary=[PRIMARY_MODE.get(f) == m for f, m in zip(latest["framework"], latest["mode"])])
    # prefer each framework's usual mode; fall back to whatever mode was measured
    lat = lat.sort_values("primary").drop_duplicates(
        [
            "machine",
            "framework",
            "device",
            "variant",
            "pass",
            "dtype",
            "layers",
            "formulation",
            "batch",
            "input_size",
            "hidden",
            "seq_len",
        ],
        keep="last",
    )
    lat = lat.assign(shape=[_shape(r) for r in lat.itertuples()])
    winners: dict[str, int] = {}
    n_shapes = 0
    drawable = []
    for ident, g in lat.groupby(["machine", "device", "variant", "pass", "dtype", "layers"], dropna=False):
        if g["framework"].nunique() < 2:
            continue
        best = g.groupby(["shape", "framework"])["median_s"].min().unstack("framework")
        for fw in best.dropna(thresh=2).idxmin(axis=1):
            winners[fw] = winners.get(fw, 0) + 1
            n_shapes += 1
        panels = {}
        for form, fg in g.groupby("formulation"):
            piv = fg.pivot_table(index="shape", columns="framework", values="median_s", aggfunc="min")
            piv = piv[piv.notna().sum(axis=1) >= 2]
            if len(piv):
                panels[str(form)] = piv.loc[
                    piv.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:MAX_GRID]
                ]
        if panels:
            ordered = {f: panels[f] for f in charts.FORMULATION_COLOURS if f in panels}
            drawable.append((ident, ordered))

    def chart(n: int, group: tuple[Any, dict[str, pd.DataFrame]]) -> tuple[str, str, Job]:
        ident, panels = group
        machine, dev, variant, pas, dtype, layers = ident
        title = f"{variant} {pas} on {dev} ({dtype}, layers={layers}) across frameworks, on {machine}"
        name = f"img/frameworks-{n:03d}-{_slug(dev, variant, pas, dtype, layers)}.png"
        return name, title, functools.partial(charts.cross_framework, panels, title, img / name)

    jobs = _chart_jobs(sec, drawable, limit, chart)
    if winners:
        order = sorted(winners.items(), key=lambda kv: -kv[1])
        sec.finding = (
            "With each framework's best formulation, the fastest framework is "
            + ", ".join(f"{fw} on {n} of {n_shapes} shapes" for fw, n in order)
            + "."
        )
    else:
        sec.finding = "No case was measured in two or more frameworks on one machine."
    return sec, jobs


# -- tables -----------------------------------------------------------------------------------------


# the fingerprint fields the environment table shows, as (header, column of the machine's newest row)
_ENVIRONMENT_COLUMNS = [
    ("hostname", "hostname"),
    ("CPU", "cpu_model"),
    ("cores", "cpu_cores"),
    ("GPU", "gpu_name"),
    ("driver", "gpu_driver"),
    ("CUDA", "cuda"),
    ("cuDNN", "cudnn"),
    ("BLAS", "blas"),
    ("Python", "python"),
    ("OS", "os"),
]


def _environment(frame: pd.DataFrame) -> Section:
    sec = Section(
        "environment",
        "Environment per machine",
        "",
        "The fingerprint each result file recorded; the newest one per machine is shown.",
    )
    rows = []
    for machine, g in frame.sort_values("date", na_position="first").groupby("machine", dropna=False):
        last = g.iloc[-1]
        fws = json.loads(last["frameworks"]) if isinstance(last["frameworks"], str) else {}
        rows.append(
            [
                machine,
                *(last[column] for _, column in _ENVIRONMENT_COLUMNS),
                ", ".join(f"{k} {v}" for k, v in sorted(fws.items())),
                ", ".join(sorted(set(g["source"]))),
                g["file"].nunique(),
                g["commit"].dropna().nunique(),
                len(g),
                f"{g['date'].min():%Y-%m-%d} .. {g['date'].max():%Y-%m-%d}" if g["date"].notna().any() else "",
            ]
        )
    headers = [
        "machine",
        *(h for h, _ in _ENVIRONMENT_COLUMNS),
        "frameworks",
        "sources",
        "files",
        "commits",
        "cases",
        "dates",
    ]
    sec.tables.append(_table(headers, rows))
    sec.finding = f"{len(rows)} machine{'s' if len(rows) != 1 else ''}: " + ", ".join(str(r[0]) for r in rows) + "."
    return sec


def _failures(frame: pd.DataFrame) -> Section:
    sec = Section(
        "failures", "Failed cases", "", "Cases that did not produce a time, with the reason the runner or asv recorded."
    )
    failed = frame[frame["status"].eq("failed")].sort_values(["machine", "key"])
    skipped = frame[frame["status"].eq("skipped")]
    if len(failed):
        sec.tables.append(
            _table(
                ["machine", "case", "error", "commit", "date"],
                [
                    [
                        r.machine,
                        r.key,
                        (str(r.error) if r.error is not None else "")[:500],
                        (r.commit or "")[:8] if isinstance(r.commit, str) else "",
                        r.date,
                    ]
                    for r in failed.itertuples()
                ],
            )
        )
    if len(skipped):
        reasons = skipped.groupby(skipped["error"].fillna("(no reason)")).size().sort_values(ascending=False)
        sec.tables.append(_table(["skipped because", "cases"], [[k, int(v)] for k, v in reasons.items()]))
    by_reason = (
        failed.groupby(failed["error"].fillna("(no reason)").str.split("\n").str[0].str[:80])
        .size()
        .sort_values(ascending=False)
    )
    sec.finding = (
        f"{len(failed)} of {len(frame)} measurements failed"
        + (f"; the most common reason ({int(by_reason.iloc[0])}x): {by_reason.index[0]}" if len(by_reason) else "")
        + (f"; {len(skipped)} were skipped as unsupported" if len(skipped) else "")
        + "."
    )
    return sec


# -- the page ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
p.finding{background:#f3f6fa;border-left:4px solid #1f77b4;padding:.5em .8em;font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;font-size:.8em;margin:1em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f5f5f5}
td{max-width:40em;word-break:break-word}.note{color:#777;font-size:.85em}nav li{margin:.2em 0}
"""


def _page(sections: list[Section], frame: pd.DataFrame, generated: str) -> str:
    nav = "".join(f'<li><a href="#{s.slug}">{_e(s.title)}</a></li>' for s in sections)
    body = []
    for s in sections:
        figs = "".join(
            f'<figure><img src="{_e(name)}" alt="{_e(alt)}"><figcaption>{_e(alt)}</figcaption></figure>'
            for name, alt in s.images
        )
        notes = "".join(f'<p class="note">{_e(n)}</p>' for n in s.notes)
        body.append(
            f'<section id="{s.slug}"><h2>{_e(s.title)}</h2><p class="finding">{_e(s.finding)}</p>'
            f"<p>{_e(s.intro)}</p>{''.join(s.tables)}{figs}{notes}</section>"
        )
    sources = ", ".join(f"{n} from {src}" for src, n in frame["source"].value_counts().items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>rnnbench report</title><style>{_CSS}</style></head><body>"
        f"<h1>rnnbench report</h1><p>{_e(len(frame))} measurements ({_e(sources)}) on "
        f"{_e(frame['machine'].nunique())} machine(s), {_e(frame['commit'].dropna().nunique())} commit(s). "
        f"Generated {_e(generated)}.</p><nav><ol>{nav}</ol></nav>{''.join(body)}</body></html>\n"
    )


def build_report(
    frame: pd.DataFrame, out: str | Path, threshold: float = 0.05, max_charts: int = MAX_CHARTS, progress: bool = True
) -> Path:
    """Write `out/index.html` and `out/img/*.png` for `frame` (from `rnnbench.analysis.frame.load`); returns the page."""
    out = Path(out)
    check_out_dir(out)
    try:
        (out / "img").mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by rnnbench report; a later report may replace this folder's files\n")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write to {out}: {exc.strerror or exc}", str(out)) from None
    for old in (out / "img").glob("*.png"):
        old.unlink()  # a chart that is no longer drawn must not linger next to the new page
    latest = _latest(frame)
    steps = detect(frame, threshold)
    built = [
        _winner_maps(latest, out, max_charts),
        _scaling(latest, out, max_charts),
        _roofline(latest, out, max_charts),
        _history(frame, steps, out, max_charts, threshold),
        _cross(latest, out, max_charts),
    ]
    sections = [_environment(frame)] + [s for s, _ in built] + [_failures(frame)]
    jobs = [j for _, js in built for j in js]
    # disable=None lets tqdm hide the bar when stderr is not a terminal (CI logs)
    for job in tqdm(
        jobs, desc="rnnbench report: charts", unit="chart", file=sys.stderr, disable=None if progress else True
    ):
        job()
    page = out / "index.html"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    _replace(page, _page(sections, frame, generated))
    return page


def check_out_dir(out: Path) -> None:
    """UsageError unless `out` is missing, empty, or a folder an earlier report wrote (it has the marker)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if (out / MARKER).is_file():
        return
    try:
        with os.scandir(out) as it:
            first = next(it, None)
    except OSError as exc:
        raise UsageError(f"cannot read --out {out}: {exc.strerror or exc}") from None
    if first is not None:
        raise UsageError(
            f"--out {out} is not empty and no earlier report was written there (no {MARKER}); "
            "give a new or empty folder"
        )


def _replace(path: Path, text: str) -> None:
    """Write `path` all at once, so a full disk or a kill leaves the previous page, not half of one."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}", str(path)) from None
