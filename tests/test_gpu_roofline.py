"""The roofline's ceilings: the GEMM size ladder, the STREAM bandwidth probe, the traffic model, the chart.

Timing is replaced by prescribed medians where a test is about which size
wins, so nothing here depends on how fast this machine is.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnbench.measure import roofline
from rnnbench.measure.roofline import apply_machine_peaks, case_bytes, gemm_peak, stream_bandwidth, stream_kernels
from rnnbench.measure.timing import Measurement, TimingConfig
from rnnbench.reference import CellSpec, init_weights

FAST = TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3)


def _fake_measure(seconds_of):
    """A `measure` stand-in: the call object says its own per-call time."""
    return lambda call, config, **_: Measurement((seconds_of(call),), 1, 0.0, 0)


def test_gemm_peak_takes_the_best_size_not_the_first_plateau(monkeypatch):
    # 768 dips (a noisy sample): the old "stop when no 5% gain" rule ended there and kept 512's rate
    rate = {256: 50, 384: 80, 512: 100, 768: 90, 1024: 160, 1536: 170, 2048: 436, 3072: 300, 4096: 200}
    monkeypatch.setattr(roofline, "measure", _fake_measure(lambda n: 2 * n**3 / (rate[n] * 1e9)))
    monkeypatch.setattr(roofline, "MAX_CALL_S", 1e9)
    best = gemm_peak(lambda n: n, "cpu", FAST)
    assert best["n"] == 2048 and best["gflops"] == pytest.approx(436)
    assert [n for n, _ in best["ladder"]] == list(roofline.GEMM_LADDER["cpu"])


def test_gemm_peak_skips_sizes_whose_call_would_be_too_slow(monkeypatch):
    monkeypatch.setattr(roofline, "measure", _fake_measure(lambda n: 2 * n**3 / 1e9))  # 1 GFLOP/s
    best = gemm_peak(lambda n: n, "cpu", FAST)
    tried = [n for n, _ in best["ladder"]]
    # 1 GFLOP/s: 384 takes 0.11 s, 512 would take 0.27 s > MAX_CALL_S
    assert tried == [256, 384]
    assert all(2 * n**3 / 1e9 <= roofline.MAX_CALL_S for n in tried)


def test_one_stalled_size_does_not_end_the_ladder(monkeypatch):
    # 384 stalls (10x slower than the machine's rate): the next size is predicted from the best rate, not from it
    rate = dict.fromkeys(roofline.GEMM_LADDER["cpu"], 100.0) | {384: 10.0, 1024: 120.0}
    monkeypatch.setattr(roofline, "measure", _fake_measure(lambda n: 2 * n**3 / (rate[n] * 1e9)))
    best = gemm_peak(lambda n: n, "cpu", FAST)
    assert best["n"] == 1024 and best["gflops"] == pytest.approx(120.0)


@pytest.mark.parametrize(
    "framework", ["numpy", "torch", "jax", pytest.param("tensorflow", marks=pytest.mark.slow)]
)  # importing TensorFlow alone takes seconds
def test_stream_kernels_compute_copy_and_triad(framework):
    n = 100_003  # not a multiple of numpy's block, so the last partial block is covered
    k = stream_kernels(framework, "cpu", "float32", n)
    np.testing.assert_array_equal(np.asarray(k["copy"]()), np.ones(n, np.float32))
    np.testing.assert_array_equal(np.asarray(k["triad"]()), np.full(n, 1.0 + 3.0 * 2.0, np.float32))


def test_stream_bandwidth_counts_stream_bytes(monkeypatch):
    monkeypatch.setattr(roofline, "stream_array_bytes", lambda device: 4 * 1000)
    monkeypatch.setattr(roofline, "measure", _fake_measure(lambda call: 1e-6))
    bw = stream_bandwidth("numpy", "cpu", "float32", FAST)
    assert bw["stream_bytes"] == 4000
    assert bw["copy_gbps"] == pytest.approx(2 * 4000 / 1e-6 / 1e9)  # copy: read b, write a
    assert bw["triad_gbps"] == pytest.approx(3 * 4000 / 1e-6 / 1e9)  # triad: read b and c, write a


def test_stream_arrays_exceed_the_cache():
    assert roofline.stream_array_bytes("cpu") >= 4 * min(roofline._last_level_cache_bytes() or 0, 128 * 2**20)
    assert roofline.stream_array_bytes("cuda") >= 4 * 60 * 10**6  # 4x H200's L2


def test_peak_probe_reports_both_ceilings():
    from rnnbench.sweep.worker import measure_peak

    peak = measure_peak("numpy", "cpu", "float32", FAST)
    assert peak["gflops"] > 0 and peak["n"] in roofline.GEMM_LADDER["cpu"]
    assert peak["gflops"] == max(g for _, g in peak["ladder"])
    assert peak["copy_gbps"] > 0 and peak["triad_gbps"] > 0 and "bandwidth_error" not in peak


def test_peak_fraction_is_against_the_machines_best():
    doc = {
        "peaks": [
            {"framework": "torch", "device": "cpu", "dtype": "float32", "gflops": 168.0, "triad_gbps": 9.0},
            {"framework": "tensorflow", "device": "cpu", "dtype": "float32", "gflops": 436.0, "triad_gbps": 11.0},
            {"framework": "torch", "device": "cpu", "dtype": "bfloat16", "gflops": 50.0},
        ],
        "records": [
            {"framework": "torch", "device": "cpu", "dtype": "float32", "gflops": 342.0, "peak_gflops": 168.0,
             "peak_fraction": 342 / 168},
            {"framework": "torch", "device": "cpu", "dtype": "bfloat16", "gflops": 10.0, "peak_gflops": 50.0},
            {"framework": "torch", "device": "cpu", "dtype": "float32", "status": "failed", "gflops": None},
            {"framework": "torch", "device": "cpu", "dtype": "float32", "fp32": "tf32", "gflops": 300.0,
             "peak_gflops": 168.0, "peak_fraction": 300 / 168},
        ],
    }  # fmt: skip
    apply_machine_peaks(doc)
    fp32, bf16, failed, tf32 = doc["records"]
    assert fp32["machine_peak_gflops"] == 436.0 and fp32["peak_gflops"] == 168.0
    assert fp32["peak_fraction"] == pytest.approx(342 / 436) and fp32["peak_fraction"] < 1
    assert bf16["machine_peak_gflops"] == 50.0 and bf16["peak_fraction"] == pytest.approx(0.2)
    assert fp32["bandwidth_gbps"] == 11.0 and failed["machine_peak_gflops"] == 436.0
    # no TF32 peak was measured: a TF32 case is not measured against the strict fp32 ceiling
    assert tf32["machine_peak_gflops"] is None and tf32["peak_fraction"] is None


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("train", [False, True])
def test_case_bytes_counts_each_steps_weights_and_activations(cell, train):
    """Oracle: the sizes of the reference's own weight arrays, re-read at every step of every layer."""
    b, i, h, t, layers = 3, 5, 7, 11, 2
    w = init_weights(CellSpec(cell), i, h, layers)
    g = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    per_step = 0
    for k in range(layers):
        weights = sum(w[f"{n}_l{k}"].size for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        fan_in = w[f"weight_ih_l{k}"].shape[1] + h
        per_step += weights + b * fan_in + b * g * h
    expected = t * per_step * 4 * (3 if train else 1)
    assert case_bytes(cell, b, i, h, t, layers, "float32", train) == expected
    assert case_bytes(cell, b, i, h, t, layers, "bfloat16", train) == expected // 2


def test_intensity_grows_with_batch():
    from rnnbench.reference import useful_flops

    ai = [useful_flops(CellSpec("lstm"), b, 256, 256, 50, 1, False) / case_bytes("lstm", b, 256, 256, 50, 1, "float32", False)
          for b in (1, 16, 256)]  # fmt: skip
    assert ai[0] < ai[1] < ai[2]
    assert ai[0] < 1.0  # batch 1 does about 2 FLOP per weight of 4 bytes: memory-bound anywhere


def _frame() -> pd.DataFrame:
    base = {"machine": "m", "device": "cpu", "dtype": "float32", "cell": "lstm", "variant": "lstm", "input_size": 256,
            "hidden": 256, "seq_len": 50, "layers": 1, "pass": "forward", "peak_gflops": 100.0,
            "machine_peak_gflops": 400.0, "bandwidth_gbps": 10.0}  # fmt: skip
    from rnnbench.reference import useful_flops

    rows = []
    for b, gflops, fw, form in ((1, 4.0, "torch", "native"), (256, 200.0, "numpy", "hoisted")):
        rows.append(base | {"batch": b, "flops": useful_flops(CellSpec("lstm"), b, 256, 256, 50, 1, False),
                            "gflops": gflops, "framework": fw, "formulation": form})  # fmt: skip
    return pd.DataFrame(rows)


def test_report_roofline_measures_each_case_against_the_lower_ceiling(tmp_path: Path):
    from rnnbench.report.build import _roofline

    frame = _frame()
    sec, jobs = _roofline(frame, tmp_path, limit=4)
    ai1 = frame.loc[0, "flops"] / case_bytes("lstm", 1, 256, 256, 50, 1, "float32", False)
    # batch 1 sits under the bandwidth ceiling (10 GB/s x ai), batch 256 under the GEMM ceiling (400)
    frac1, frac256 = 4.0 / (10.0 * ai1), 200.0 / 400.0
    best = max(frac1, frac256)
    assert f"reaches {best:.0%} of its roofline" in sec.finding
    assert "1 of 2 cases sit under the bandwidth ceiling" in sec.finding
    (tmp_path / "img").mkdir()
    png = jobs[0]()
    assert png.stat().st_size > 1000


def test_roofline_chart_draws_both_ceilings(tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from rnnbench.report import charts

    drawn = {}
    real_save = charts._save

    def keep(fig, path):
        ax = fig.axes[0]
        drawn["lines"] = [(ln.get_label(), ln.get_xdata(), ln.get_ydata()) for ln in ax.get_lines()]
        drawn["xlabel"] = ax.get_xlabel()
        return real_save(fig, path)

    charts._save, saved = keep, charts._save
    try:
        pts = pd.DataFrame({"intensity": [0.5, 60.0], "gflops": [4.0, 200.0], "formulation": ["native", "hoisted"],
                            "framework": ["torch", "numpy"]})  # fmt: skip
        charts.roofline(pts, 400.0, 10.0, {"torch": 100.0, "numpy": 400.0}, "t", tmp_path / "r.png")
    finally:
        charts._save = saved
    plt.close("all")
    labels = [label for label, _, _ in drawn["lines"]]
    assert "arithmetic intensity" in drawn["xlabel"]
    assert any(lb.startswith("memory ceiling") for lb in labels) and any(
        lb.startswith("compute ceiling") for lb in labels
    )
    assert sum("GEMM:" in lb for lb in labels) == 1  # numpy set the machine's ceiling: drawn once, not twice
    _, xs, ys = next(d for d in drawn["lines"] if d[0].startswith("memory ceiling"))
    assert np.allclose(ys, np.minimum(10.0 * np.asarray(xs), 400.0))  # the roof: min(bandwidth x AI, peak)
    assert math.isclose(float(max(ys)), 400.0)


def test_peak_probe_records_strict_fp32_and_a_peak_keeps_its_probe_fields() -> None:
    from rnnbench.measure.timing import TimingConfig
    from rnnbench.sweep.records import Peak
    from rnnbench.sweep.worker import measure_peak

    raw = {"framework": "numpy", "device": "cpu", "dtype": "float32", "n": 256, "median_s": 1e-3, "gflops": 33.5,
           "fp32": "strict", "bandwidth_gbps": 12.0}  # fmt: skip
    assert Peak.from_json(raw).to_json() == raw
    peak = measure_peak("numpy", "cpu", "float32", TimingConfig(budget_s=0.05, min_samples=3))
    assert peak["fp32"] == "strict" and peak["gflops"] > 0


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_gemm_sets_the_fp32_mode_it_is_asked_for(framework: str) -> None:
    """TF defaults to TF32 on Ampere and later: the peak probe must say which precision it timed."""
    from rnnbench import backends

    def tf32_enabled() -> bool:
        if framework == "torch":
            import torch

            return bool(torch.backends.cuda.matmul.allow_tf32)
        import tensorflow as tf

        return bool(tf.config.experimental.tensor_float_32_execution_enabled())

    backend = backends.get(framework)
    backend.gemm("cpu", "float32", 64, fp32="tf32")()
    assert tf32_enabled()
    backend.gemm("cpu", "float32", 64, fp32="strict")()
    assert not tf32_enabled()
