"""The machine fingerprint through NVML, checked against a fake `pynvml` (no GPU needed).

The fake holds two GPUs with different UUIDs, clocks and states, so every
field read from the wrong device, or with CUDA_VISIBLE_DEVICES ignored,
shows up as a wrong value.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from rnnbench.measure import machine
from rnnbench.measure.machine import GpuMonitor, fingerprint, gpu_info, machine_name, visible_gpus

UUIDS = ("GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000")


class NVMLError(Exception):
    pass


def fake_nvml(throttle_bits: int = 0) -> types.ModuleType:
    """A `pynvml` stand-in: device 0 is an idle A100 with ECC off, device 1 an H100 with everything on."""
    m = types.ModuleType("pynvml")
    devs: list[dict[str, Any]] = [
        {"name": "NVIDIA A100-SXM4-40GB", "mig": 0, "ecc": 0, "persist": 0, "power": 400000, "app": 1095,
         "max": 1410, "temp": 31, "sm": 210, "mem_total": 40 * 2**30},
        {"name": "NVIDIA H100 80GB HBM3", "mig": 1, "ecc": 1, "persist": 1, "power": 700000, "app": 1755,
         "max": 1980, "temp": 64, "sm": 1980, "mem_total": 80 * 2**30},
    ]  # fmt: skip
    m.NVMLError = NVMLError  # type: ignore[attr-defined]
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_TEMPERATURE_GPU = 1, 2, 0  # type: ignore[attr-defined]
    m.calls = []  # type: ignore[attr-defined]
    m.nvmlInit = lambda: m.calls.append("init")  # type: ignore[attr-defined]
    m.nvmlShutdown = lambda: m.calls.append("shutdown")  # type: ignore[attr-defined]
    m.nvmlSystemGetDriverVersion = lambda: b"550.54.15"  # type: ignore[attr-defined]
    m.nvmlSystemGetCudaDriverVersion = lambda: 12040  # type: ignore[attr-defined]
    m.nvmlDeviceGetCount = lambda: len(devs)  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    m.nvmlDeviceGetUUID = lambda h: UUIDS[h]  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: devs[h]["name"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetMigMode = lambda h: (devs[h]["mig"], devs[h]["mig"])  # type: ignore[attr-defined]
    m.nvmlDeviceGetEccMode = lambda h: (devs[h]["ecc"], devs[h]["ecc"])  # type: ignore[attr-defined]
    m.nvmlDeviceGetPersistenceMode = lambda h: devs[h]["persist"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetPowerManagementLimit = lambda h: devs[h]["power"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=devs[h]["mem_total"])  # type: ignore[attr-defined]
    m.nvmlDeviceGetApplicationsClock = lambda h, k: devs[h]["app"] if k == 1 else 1593  # type: ignore[attr-defined]
    m.nvmlDeviceGetMaxClockInfo = lambda h, k: devs[h]["max"] if k == 1 else 2619  # type: ignore[attr-defined]
    m.nvmlDeviceGetClockInfo = lambda h, k: devs[h]["sm"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetTemperature = lambda h, k: devs[h]["temp"]  # type: ignore[attr-defined]
    m.nvmlDeviceGetCurrentClocksEventReasons = lambda h: throttle_bits if h == 1 else 0x1  # type: ignore[attr-defined]
    return m


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("RNNBENCH_MACHINE", raising=False)
    return fake


def test_fingerprint_fields_come_from_nvml(nvml):
    fp = fingerprint(1)
    assert fp["gpu_source"] == "nvml"
    assert (fp["gpu_name"], fp["gpu_uuid"], fp["gpu_index"], fp["gpu_count"]) == (
        "NVIDIA A100-SXM4-40GB", UUIDS[0], 0, 2,
    )  # fmt: skip
    assert fp["gpu_driver"] == "550.54.15" and fp["cuda"] == "12.4"
    assert (fp["gpu_mig"], fp["gpu_ecc"], fp["gpu_persistence"]) == (False, False, False)
    assert fp["gpu_power_limit_w"] == 400.0 and fp["gpu_memory_mib"] == 40 * 1024
    assert fp["gpu_app_clocks_mhz"] == {"sm": 1095, "mem": 1593}
    assert fp["gpu_max_clocks_mhz"] == {"sm": 1410, "mem": 2619}
    assert fp["runtimes"] == {} and "xla_flags" in fp
    assert nvml.calls.count("init") == nvml.calls.count("shutdown")  # NVML is released after reading


@pytest.mark.parametrize("cvd", ["1", UUIDS[1], "GPU-bbbb", "1,0"])
def test_cuda_visible_devices_picks_the_device_cases_run_on(nvml, monkeypatch, cvd):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cvd)
    info = gpu_info()
    assert (info["gpu_uuid"], info["gpu_index"], info["gpu_name"]) == (UUIDS[1], 1, "NVIDIA H100 80GB HBM3")
    assert (info["gpu_mig"], info["gpu_ecc"], info["gpu_persistence"]) == (True, True, True)
    assert info["gpu_power_limit_w"] == 700.0 and info["gpu_app_clocks_mhz"]["sm"] == 1755
    assert info["gpu_count"] == len(cvd.split(","))


@pytest.mark.parametrize("cvd", ["", "-1", "7", "0,0"])
def test_cuda_visible_devices_can_hide_every_gpu(nvml, monkeypatch, cvd):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cvd)
    assert gpu_info()["gpu_name"] is None


def test_visible_gpus_follows_cuda_rules():
    devs = [(0, UUIDS[0]), (1, UUIDS[1])]
    assert visible_gpus(devs, None) == devs
    assert visible_gpus(devs, "1,0") == devs[::-1]
    assert visible_gpus(devs, "0,9,1") == devs[:1]  # enumeration stops at the first unknown entry
    assert visible_gpus(devs, "aaaa") == devs[:1]  # a UUID prefix without GPU- works too
    assert visible_gpus([(0, "GPU-ab1"), (1, "GPU-ab2")], "GPU-ab") == []  # ambiguous prefix matches nothing


def test_machine_is_named_by_gpu_class_and_host_not_hostname(nvml, monkeypatch):
    monkeypatch.setattr(machine.platform, "node", lambda: "runner-7f3c9-ephemeral")
    name = machine_name()
    assert "runner" not in name and name.startswith("A100-SXM4-40GBx2-")
    assert name.endswith(f"-{machine.os.cpu_count()}c")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert machine_name().startswith("H100-80GB-HBM3x1-")
    monkeypatch.setenv("RNNBENCH_MACHINE", "nightly")  # the pipeline's shared name keeps the GPU class
    assert machine_name() == "nightly-H100-80GB-HBM3x1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert machine_name() == "nightly"


def test_monitor_flags_throttled_samples(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(throttle_bits=0x4 | 0x20))  # power cap + thermal
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    mon = GpuMonitor()
    s = mon.sample()
    assert s == {"temp_c": 64, "sm_mhz": 1980, "throttle": ["sw_power_cap", "sw_thermal_slowdown"], "throttled": True}
    fields = GpuMonitor.case_fields({**s, "throttled": False, "throttle": [], "temp_c": 60}, s)
    assert fields == {"gpu_temp_c": [60, 64], "gpu_sm_mhz": [1980, 1980],
                      "gpu_throttle": ["sw_power_cap", "sw_thermal_slowdown"], "gpu_throttled": True}  # fmt: skip
    assert set(fields) == set(machine.GPU_SAMPLE_KEYS)
    mon.close()
    # an idle GPU is not throttled: idle is not a slowdown
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    idle = GpuMonitor()
    assert idle.sample() == {"temp_c": 31, "sm_mhz": 210, "throttle": ["gpu_idle"], "throttled": False}


def test_without_nvml_or_nvidia_smi_there_is_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    monkeypatch.setattr(machine.shutil, "which", lambda _: None)
    assert gpu_info()["gpu_name"] is None
    assert not GpuMonitor().active and GpuMonitor().sample() is None
    assert GpuMonitor.case_fields(None, None) == {}


def test_run_accepts_cuda_when_nvml_sees_a_gpu_without_nvidia_smi(nvml, monkeypatch):
    """`run` refuses cuda only when no GPU is visible at all, not when nvidia-smi is missing."""
    from rnnbench.cli.run import gpu_visible

    monkeypatch.setattr(machine.shutil, "which", lambda _: None)
    assert gpu_visible()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not gpu_visible()


def test_worker_reports_framework_runtime_versions():
    rt = machine.framework_runtime("numpy")
    assert rt == {"cuda_runtime": None, "cudnn": None}
    import torch

    rt = machine.framework_runtime("torch")
    assert rt["cuda_runtime"] == torch.version.cuda
    assert machine._dotted(90100, "cudnn") == "9.1.0" and machine._dotted(8902, "cudnn") == "8.9.2"
    assert machine._dotted(12040, "cuda") == "12.4"


def test_runner_files_each_frameworks_runtime_in_the_fingerprint(tmp_path):
    from rnnbench.case import Case
    from rnnbench.measure.timing import TimingConfig
    from rnnbench.sweep.runner import RunOptions, run_cases
    from rnnbench.sweep.store import read_document

    fast = TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3)
    case = Case(framework="numpy", formulation="separate", hidden=8, input_size=4, batch=2, seq_len=3)
    writer = run_cases([case], fingerprint(1), RunOptions(tmp_path, threads=1, timing=fast, peak_timing=fast,
                                                          progress=False))  # fmt: skip
    doc = read_document(writer.path)
    assert doc["machine"]["runtimes"] == {"numpy": {"cuda_runtime": None, "cudnn": None}}
    assert not set(machine.GPU_SAMPLE_KEYS) & set(doc["records"][0])  # CPU cases carry no GPU samples


def test_an_older_nvml_binding_loses_only_the_fields_it_lacks(nvml, monkeypatch):
    for name in ("nvmlDeviceGetMigMode", "nvmlDeviceGetApplicationsClock", "nvmlDeviceGetCurrentClocksEventReasons"):
        monkeypatch.delattr(nvml, name)
    info = gpu_info()
    assert info["gpu_source"] == "nvml" and info["gpu_uuid"] == UUIDS[0]
    assert info["gpu_mig"] is None and info["gpu_app_clocks_mhz"] == {"sm": None, "mem": None}
    assert info["gpu_ecc"] is False and info["gpu_max_clocks_mhz"]["sm"] == 1410
    assert GpuMonitor().sample()["throttle"] == []
