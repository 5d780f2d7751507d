"""The report's matplotlib figures: one function per chart kind, each writing one PNG.

This module owns how results look (colours, scales, labels, layout); which
data goes into which chart, and the words around them, belong to
`rnnbench.report`. Every function takes plain pandas/numpy data, draws on
the Agg backend (no display needed), uses constrained layout so labels do
not overlap, and closes its figure so a long render does not grow memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FORMULATION_COLOURS",
    "cross_framework",
    "history",
    "mpl_text",
    "roofline",
    "scaling",
    "winner_maps",
]

# one fixed colour per formulation on every chart, so a reader learns them once
FORMULATION_COLOURS = {"separate": "#1f77b4", "concat": "#d62728", "hoisted": "#2ca02c", "native": "#9467bd"}
FRAMEWORK_MARKERS = {"numpy": "o", "torch": "s", "tensorflow": "^", "jax": "D"}
DPI = 100


def mpl_text(text: object) -> str:
    """Text from results, safe for matplotlib: `$` would start mathtext and can fail to parse."""
    return str(text).replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    import matplotlib  # lazy: heavy, in `.[report]` only

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure  # lazy: heavy, in `.[report]` only

    # Figure() rather than pyplot: no global state, nothing to leak between charts
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _log_axis(axis: Any) -> None:
    """Log scale labelled at 1-2-5 steps: a range under one decade still gets numbers on it."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # lazy: heavy, in `.[report]` only

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def winner_maps(
    ratio: pd.DataFrame, times: dict[str, pd.DataFrame], title: str, path: Path, labels: pd.DataFrame | None = None
) -> Path:
    """Left: concat/separate time ratio per batch x hidden (diverging at 1). Right: the fastest formulation.

    `ratio` is indexed by batch (rows) and hidden (columns); `times` maps a
    formulation to a frame of the same shape with its median seconds.
    `labels` (same shape, optional) is the verdict per cell from
    `rnnbench.judge.rules.resolve_winner`: a cell whose label starts
    with "tie" is drawn grey with the tied formulations named.
    """
    from matplotlib.colors import ListedColormap, Normalize  # lazy: heavy, in `.[report]` only

    rows, cols = list(ratio.index), list(ratio.columns)
    fig = _figure(max(10.0, 3.0 + 1.3 * len(cols) * 2), max(3.4, 1.6 + 0.55 * len(rows)))
    ax1, ax2 = fig.subplots(1, 2)
    values = ratio.to_numpy(dtype=float)
    # log2 so that 0.5x and 2x sit at the same distance from the white centre
    logv = np.log2(values)
    finite = logv[np.isfinite(logv)]
    span = max(float(np.abs(finite).max()) if finite.size else 0.0, 0.05)
    # a symmetric range around log2(1) = 0 puts "no difference" at the white centre
    im = ax1.imshow(logv, cmap="RdBu_r", norm=Normalize(vmin=-span, vmax=span), aspect="auto")
    cb = fig.colorbar(im, ax=ax1, shrink=0.9)
    cb.set_label("concat / separate (blue: concat faster)", fontsize=8)
    nice = [0.25, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0]
    ticks = [float(np.log2(v)) for v in nice if abs(np.log2(v)) <= span]
    cb.set_ticks(ticks, labels=[f"{2**t:.3g}x" for t in ticks])
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = values[i, j]
            text = "n/a" if not np.isfinite(v) else f"{v:.2f}"
            dark = np.isfinite(v) and abs(logv[i, j]) > 0.6 * span
            ax1.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax1.set_title("time ratio concat / separate", fontsize=10)

    forms = [f for f in FORMULATION_COLOURS if f in times]
    stack = np.stack([times[f].reindex(index=rows, columns=cols).to_numpy(dtype=float) for f in forms])
    filled = np.where(np.isfinite(stack), stack, np.inf)
    best = np.argmin(filled, axis=0)
    has = np.isfinite(stack).any(axis=0)
    cmap = ListedColormap([FORMULATION_COLOURS[f] for f in forms])
    given = labels.reindex(index=rows, columns=cols) if labels is not None else None
    tie = np.zeros(has.shape, dtype=bool)
    if given is not None:
        tie = np.array([[str(v).startswith("tie") for v in r] for r in given.to_numpy(dtype=object)])
    shown = np.where(has & ~tie, best, np.nan)
    ax2.imshow(shown, cmap=cmap, vmin=-0.5, vmax=len(forms) - 0.5, aspect="auto", alpha=0.75)
    if tie.any():  # unresolved leads in grey: no colour claims a winner there
        ax2.imshow(np.where(tie, 1.0, np.nan), cmap=ListedColormap(["#d9d9d9"]), aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not has[i, j]:
                ax2.text(j, i, "n/a", ha="center", va="center", fontsize=9)
                continue
            if tie[i, j] and given is not None:
                names = str(given.iat[i, j]).removeprefix("tie: ").replace(", ", "\n")
                ax2.text(j, i, "tie\n" + names, ha="center", va="center", fontsize=7)
                continue
            col = np.sort(filled[:, i, j])
            margin = col[1] / col[0] if len(col) > 1 and np.isfinite(col[1]) else float("nan")
            label = forms[best[i, j]] + (f"\n{margin:.2f}x" if np.isfinite(margin) else "")
            ax2.text(j, i, label, ha="center", va="center", fontsize=8)
    ax2.set_title(
        "fastest (lead over runner-up); grey: tie" if tie.any() else "fastest formulation (lead over runner-up)",
        fontsize=10,
    )
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(cols)), [str(c) for c in cols])
        ax.set_yticks(range(len(rows)), [str(r) for r in rows])
        ax.set_xlabel("hidden size H")
        ax.set_ylabel("batch size B")
    fig.suptitle(mpl_text(title), fontsize=11)
    return _save(fig, path)


def scaling(
    by_seq: pd.DataFrame | None, seq_note: str, by_hidden: pd.DataFrame | None, hidden_note: str, title: str, path: Path
) -> Path:
    """Time per step against seq_len and against hidden, one line per formulation, log-log.

    Each frame is indexed by the x value with one column per formulation (seconds per step).
    """
    from matplotlib.ticker import NullLocator  # lazy: heavy, in `.[report]` only

    panels = [
        (d, n, x)
        for d, n, x in ((by_seq, seq_note, "sequence length T"), (by_hidden, hidden_note, "hidden size H"))
        if d is not None
    ]
    fig = _figure(5.0 * len(panels) + 0.5, 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (data, note, xlabel) in zip(axes, panels):
        for form in data.columns:
            s = data[form].dropna()
            ax.plot(s.index, s.to_numpy() * 1e6, marker="o", label=form, color=FORMULATION_COLOURS.get(form))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
        ax.set_xticks(list(data.index), [str(v) for v in data.index])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("time per step (µs, log)")
        ax.set_title(mpl_text(note), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, title="formulation", title_fontsize=8)
    fig.suptitle(mpl_text(title), fontsize=11)
    return _save(fig, path)


def roofline(
    points: pd.DataFrame,
    compute_gflops: float | None,
    bandwidth_gbps: float | None,
    framework_peaks: dict[str, float],
    title: str,
    path: Path,
) -> Path:
    """A roofline: GFLOP/s of each case against its arithmetic intensity, under both measured ceilings.

    `points` has columns intensity (FLOP/byte), gflops, formulation, framework;
    `compute_gflops` is the flat ceiling (the machine's best GEMM),
    `bandwidth_gbps` the sloped one (GFLOP/s = GB/s x FLOP/byte); either may be
    None when it was not measured. `framework_peaks` (each framework's own GEMM
    probe) are drawn thin and dotted.
    """
    fig = _figure(8.0, 4.6)
    ax = fig.subplots()
    for (form, fw), g in points.groupby(["formulation", "framework"]):
        ax.scatter(
            g["intensity"].astype(float),
            g["gflops"].astype(float),
            color=FORMULATION_COLOURS.get(str(form), "grey"),
            marker=FRAMEWORK_MARKERS.get(str(fw), "x"),
            alpha=0.8,
            s=28,
            label=f"{fw} / {form}",
        )
    ai = points["intensity"].astype(float)
    lo, hi = float(ai.min()) / 4, float(ai.max()) * 4
    if compute_gflops and bandwidth_gbps:  # the ridge point belongs on the axis, so both slopes show
        ridge = compute_gflops / bandwidth_gbps
        lo, hi = min(lo, ridge / 4), max(hi, ridge * 4)
    xs = np.geomspace(lo, hi, 200)
    if bandwidth_gbps:
        ys = bandwidth_gbps * xs if not compute_gflops else np.minimum(bandwidth_gbps * xs, compute_gflops)
        ax.plot(xs, ys, color="black", linewidth=1.5,
                label=mpl_text(f"memory ceiling: STREAM triad {bandwidth_gbps:.3g} GB/s"))  # fmt: skip
    if compute_gflops:
        ax.axhline(compute_gflops, color="black", linestyle="--", linewidth=1,
                   label=mpl_text(f"compute ceiling: best GEMM {compute_gflops:.3g} GFLOP/s"))  # fmt: skip
    for fw, peak in sorted(framework_peaks.items()):
        if compute_gflops and abs(peak - compute_gflops) < 1e-6 * compute_gflops:
            continue  # the framework that set the machine's ceiling is already drawn
        ax.axhline(peak, color="grey", linestyle=":", linewidth=0.8, label=mpl_text(f"{fw} GEMM: {peak:.3g} GFLOP/s"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    _log_axis(ax.yaxis)
    ax.set_xlabel("arithmetic intensity (useful FLOP per byte of memory traffic, log)")
    ax.set_ylabel("achieved GFLOP/s (log)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right", title="framework / formulation", title_fontsize=7)
    ax.set_title(mpl_text(title), fontsize=11)
    return _save(fig, path)


def history(
    lines: dict[str, pd.DataFrame],
    labels: Sequence[str],
    steps: Sequence[tuple[str, int, str]],
    title: str,
    path: Path,
    versions: Sequence[tuple[int, str]] = (),
) -> Path:
    """Median time per run with its IQR band, one line per formulation, step changes marked.

    Each frame in `lines` has columns pos (x position), median_s, q25_s, q75_s;
    `labels` name the x positions (commit or date); `steps` are (line, pos, kind);
    `versions` are (pos, "torch 2.12.0 -> 2.13.0"): a framework version change
    first measured at pos, drawn as a dashed line so a step beside it is read with it.
    """
    fig = _figure(max(6.5, 0.45 * len(labels) + 3.0), 4.2)
    ax = fig.subplots()
    for form, d in lines.items():
        colour = FORMULATION_COLOURS.get(form)
        ax.plot(d["pos"], d["median_s"] * 1e6, marker="o", markersize=3, label=form, color=colour)
        ax.fill_between(d["pos"], d["q25_s"] * 1e6, d["q75_s"] * 1e6, color=colour, alpha=0.2, linewidth=0)
    for form, pos, kind in steps:
        d = lines[form]
        y = float(d.loc[d["pos"] == pos, "median_s"].iloc[0]) * 1e6
        up = kind == "regression"
        ax.scatter(
            [pos], [y], marker="^" if up else "v", s=120, color="red" if up else "green", zorder=5, edgecolor="black"
        )
    for pos, text in versions:
        ax.axvline(pos - 0.5, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            mpl_text(text), (pos - 0.5, 0.02), xycoords=("data", "axes fraction"), rotation=90, va="bottom", ha="right",
            fontsize=7, color="dimgrey",
        )  # fmt: skip
    if steps:
        ax.scatter([], [], marker="^", color="red", edgecolor="black", label="regression")
        ax.scatter([], [], marker="v", color="green", edgecolor="black", label="improvement")
    step = max(1, int(np.ceil(len(labels) / 20)))  # at most ~20 tick labels
    ax.set_xticks(
        range(0, len(labels), step), [mpl_text(v) for v in labels[::step]], rotation=45, ha="right", fontsize=8
    )
    ax.set_xlabel("commit (in date order)")
    ax.set_ylabel("median time per call (µs); band: IQR")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(mpl_text(title), fontsize=10)
    return _save(fig, path)


def cross_framework(panels: dict[str, pd.DataFrame], title: str, path: Path) -> Path:
    """Grouped bars: per formulation panel, each shape (x) with one bar per framework (median time, log)."""
    n = len(panels)
    width = max(len(d.index) for d in panels.values())
    fig = _figure(min(20.0, max(6.0, n * (1.0 + 0.7 * width))), 4.4)
    axes: Sequence[Axes] = fig.subplots(1, n, squeeze=False, sharey=True)[0]
    frameworks = sorted({fw for d in panels.values() for fw in d.columns})
    colours: dict[str, Any] = {fw: f"C{i}" for i, fw in enumerate(frameworks)}
    for ax, (form, d) in zip(axes, panels.items()):
        bw = 0.8 / max(1, len(d.columns))
        x = np.arange(len(d.index))
        for k, fw in enumerate(d.columns):
            ax.bar(x + (k - (len(d.columns) - 1) / 2) * bw, d[fw].to_numpy() * 1e6, bw, label=fw, color=colours[fw])
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
        ax.set_xticks(x, [mpl_text(s) for s in d.index], rotation=40, ha="right", fontsize=8)
        ax.set_title(mpl_text(form), fontsize=10)
        ax.set_xlabel("shape")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("median time per call (µs, log)")
    axes[-1].legend(fontsize=8, title="framework", title_fontsize=8)
    fig.suptitle(mpl_text(title), fontsize=11)
    return _save(fig, path)
