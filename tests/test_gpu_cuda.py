"""The CUDA checks `make gpu-check` runs on a GPU machine (all marked `cuda`; they skip without a GPU).

Every framework x formulation x mode x dtype x pass on `cuda`, verified
against the numpy reference; the peak and bandwidth probes on the device; the
NVML fingerprint against what the frameworks themselves report; and a tiny
sweep whose records carry the per-case GPU samples. A framework that cannot
see the GPU fails here (the GPU environment installs every CUDA build), so a
green `gpu-check` means every framework really ran on the GPU.
"""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from rnnbench import backends
from rnnbench.case import Case
from rnnbench.measure.timing import TimingConfig
from rnnbench.measure.verify import make_inputs, verify_kernel

pytestmark = pytest.mark.cuda

GPU_FRAMEWORKS = ("torch", "tensorflow", "jax")
FORMULATIONS = ("separate", "concat", "hoisted", "native")
FAST = TimingConfig(budget_s=0.05, warmup_budget_s=0.05, min_samples=3)


def _modes(framework: str) -> tuple[str, ...]:
    return backends.get(framework).modes


def _cases() -> list[Case]:
    """fp32 for every cell variant; the half precisions for LSTM and GRU (the cells the nightly times most)."""
    out = []
    for fw in GPU_FRAMEWORKS:
        for mode in ("eager", "compiled"):
            for form in FORMULATIONS:
                for p in ("forward", "train"):
                    for cell, dtypes in (("rnn", ("float32",)), ("gru", ("float32", "bfloat16", "float16")),
                                         ("lstm", ("float32", "bfloat16", "float16"))):  # fmt: skip
                        for dtype in dtypes:
                            out.append(Case(framework=fw, device="cuda", cell=cell, formulation=form, mode=mode,
                                            pass_=p, dtype=dtype, batch=8, input_size=24, hidden=32, seq_len=6,
                                            layers=2))  # fmt: skip
    # combinations a framework cannot build (eager JAX, flax's GRU) are not cases; asking does not import it
    return [c for c in out if not importlib.import_module(f"rnnbench.backends.{c.framework}").BACKEND.unsupported(c)]


def _need_gpu(framework: str) -> backends.Backend:
    backend = backends.get(framework)
    assert "cuda" in backend.devices(), f"{framework} sees no CUDA device (is its CUDA build installed?)"
    return backend


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.key)
def test_cuda_case_matches_reference(case):
    backend = _need_gpu(case.framework)
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backend.build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


@pytest.mark.parametrize("framework", GPU_FRAMEWORKS)
def test_cuda_tf32_is_a_recorded_precision(framework):
    """fp32 matmuls in TF32 are a precision of their own (issue 11 item 2); cases must say which they ran."""
    fields = {f.name for f in dataclasses.fields(Case)}
    assert "fp32" in fields, "Case has no fp32 mode (strict|tf32): TF32 cases cannot be told apart"
    backend = _need_gpu(framework)
    case = Case(framework=framework, device="cuda", cell="lstm", formulation="separate", mode=_modes(framework)[0],
                batch=8, input_size=24, hidden=32, seq_len=6).replace(fp32="tf32")  # fmt: skip
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backend.build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


@pytest.mark.parametrize("framework", GPU_FRAMEWORKS)
def test_cuda_peak_and_bandwidth_probes(framework):
    from rnnbench.measure.roofline import GEMM_LADDER
    from rnnbench.sweep.worker import measure_peak

    _need_gpu(framework)
    peak = measure_peak(framework, "cuda", "float32", FAST)
    assert peak["n"] in GEMM_LADDER["cuda"] and peak["gflops"] == max(g for _, g in peak["ladder"])
    assert "bandwidth_error" not in peak, peak.get("bandwidth_error")
    # no GPU moves more than 20 TB/s: a larger figure means the probe did not wait for the kernel
    assert 0 < peak["copy_gbps"] < 20_000 and 0 < peak["triad_gbps"] < 20_000


def test_cuda_fingerprint_agrees_with_the_frameworks():
    import torch

    from rnnbench.measure.machine import GpuMonitor, fingerprint, framework_runtime

    fp = fingerprint(1)
    assert fp["gpu_source"] == "nvml", "install nvidia-ml-py: the fingerprint reads the GPU through NVML"
    assert fp["gpu_name"] == torch.cuda.get_device_name(0)
    assert fp["gpu_uuid"].startswith(("GPU-", "MIG-")) and fp["gpu_driver"] and fp["cuda"]
    assert fp["gpu_power_limit_w"] and fp["gpu_max_clocks_mhz"]["sm"]
    assert fp["gpu_count"] == torch.cuda.device_count()
    uuid = str(getattr(torch.cuda.get_device_properties(0), "uuid", "")).lower()
    assert not uuid or uuid in fp["gpu_uuid"].lower()  # torch's device 0 is the device NVML described
    for fw in GPU_FRAMEWORKS:
        rt = framework_runtime(fw)
        assert rt["cuda_runtime"] and rt["cudnn"], (fw, rt)
    sample = GpuMonitor().sample()
    assert sample is not None and sample["temp_c"] > 0 and sample["sm_mhz"] > 0


def test_cuda_sweep_records_gpu_samples_and_runtimes(tmp_path):
    from rnnbench.measure.machine import GPU_SAMPLE_KEYS, fingerprint
    from rnnbench.sweep.runner import RunOptions, run_cases
    from rnnbench.sweep.store import read_document

    case = Case(framework="torch", device="cuda", cell="lstm", formulation="native", batch=8, input_size=24,
                hidden=32, seq_len=6)  # fmt: skip
    writer = run_cases([case], fingerprint(1), RunOptions(tmp_path, threads=1, timing=FAST, peak_timing=FAST,
                                                          progress=False))  # fmt: skip
    (record,) = read_document(writer.path)["records"]
    assert record["status"] == "ok", record["error"]
    assert set(GPU_SAMPLE_KEYS) <= set(record)
    assert read_document(writer.path)["machine"]["runtimes"]["torch"]["cudnn"]
    assert record["machine_peak_gflops"] and record["bandwidth_gbps"]
