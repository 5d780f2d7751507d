"""The machine fingerprint stored with every result: hardware, software versions, threads, git state.

Everything here is read without importing a framework (`importlib.metadata`
for versions). GPU facts come from NVML (`nvidia-ml-py`, imported as
`pynvml`), falling back to `nvidia-smi` when the bindings are not installed:
the GPU's UUID and NVML index (the first device `CUDA_VISIBLE_DEVICES` lets
CUDA see, which is the one every case runs on), MIG and ECC modes,
persistence mode, power limit, application and maximum clocks, driver and
its CUDA version. What a framework linked against (its CUDA runtime and
cuDNN) can only be read where the framework is imported, so the worker
reports it (`framework_runtime`) and the runner files it under
`runtimes[framework]`. `GpuMonitor` samples temperature, SM clock and
throttle reasons around each case. `machine_name` is what results are filed
under: on a GPU machine the GPU class and host class (CPU model and cores),
never the hostname, because nightly GPU runners are ephemeral; on a CPU
machine the hostname, unless running under CI (`CI` set), where it is the
host class too.

The environment lock (`packages`, `lock_digest`): every distribution
installed in the running interpreter with its version, read from
`importlib.metadata` (no import, a few milliseconds), and a short digest of
it. Two nights with the same digest ran the same environment; a changed one
is a change the nightly pairs like a commit (docs/pipeline.md), and
`lock_lines` turns a recorded `packages` back into pip requirements to
rebuild that environment. rnnbench itself is left out of the lock: a side
runs its own checkout (a git revision on PYTHONPATH), never an installed copy.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "GPU_SAMPLE_KEYS",
    "GpuMonitor",
    "fingerprint",
    "framework_runtime",
    "git_state",
    "gpu_info",
    "lock_digest",
    "lock_lines",
    "machine_name",
    "packages",
    "visible_gpus",
]

_PACKAGES = {
    "numpy": "numpy",
    "torch": "torch",
    "tensorflow": "tensorflow-cpu",
    "jax": "jax",
    "jaxlib": "jaxlib",
    "keras": "keras",
    "flax": "flax",
}

# environment variables that change what a framework computes or where; recorded as set
_ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "XLA_FLAGS",
    "TF_XLA_FLAGS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "TF_ENABLE_ONEDNN_OPTS",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "CUBLAS_WORKSPACE_CONFIG",
)

# NVML clock-event (throttle) reason bits; the ones that mean "slower than it could run" are THROTTLING
_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
THROTTLING = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                        "hw_power_brake_slowdown"})  # fmt: skip

# the optional record keys `GpuMonitor.case_fields` adds to every CUDA case
GPU_SAMPLE_KEYS = ("gpu_temp_c", "gpu_sm_mhz", "gpu_throttle", "gpu_throttled")

_NO_GPU: dict[str, Any] = {
    "gpu_name": None,
    "gpu_driver": None,
    "cuda": None,  # the CUDA version the driver supports (frameworks' runtimes are under `runtimes`)
    "gpu_uuid": None,
    "gpu_index": None,
    "gpu_count": 0,
    "gpu_source": None,
}


def _version(dist: str) -> str | None:
    for name in (dist, dist.replace("-cpu", "")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


# distributions that are not part of the environment a night ran: the project itself (each side runs its
# own checkout) and the installers, which `python -m venv` brings in whatever version it bundles
_NOT_LOCKED = frozenset({"rnnbench", "pip", "setuptools", "wheel"})


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them (`Foo_Bar.baz` -> `foo-bar-baz`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def packages() -> dict[str, str]:
    """{normalised distribution name: version} of every distribution the running interpreter has installed."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata is not None else None
        if not name or _normalise(name) in _NOT_LOCKED:
            continue
        found.setdefault(_normalise(name), dist.version)  # the first on sys.path is the one imported
    return dict(sorted(found.items()))


def lock_lines(pkgs: dict[str, str]) -> list[str]:
    """The pip requirement lines (`name==version`, sorted) that rebuild an environment with `pkgs`."""
    return [f"{name}=={version}" for name, version in sorted(pkgs.items())]


def lock_digest(pkgs: dict[str, str]) -> str:
    """sha256 of the sorted `name==version` lines, first 16 hex digits: one environment, one digest."""
    return hashlib.sha256("\n".join(lock_lines(pkgs)).encode()).hexdigest()[:16]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def visible_gpus(devices: Sequence[tuple[int, str]], cuda_visible: str | None) -> list[tuple[int, str]]:
    """The (NVML index, UUID) pairs CUDA enumerates, in CUDA's order, under `CUDA_VISIBLE_DEVICES`.

    Follows CUDA's rules: unset means every device; entries are indices or
    (prefixes of) UUIDs (`GPU-...`); enumeration stops at the first entry that
    matches nothing (so `-1` or an empty value hide every device); a device
    listed twice makes CUDA see none.
    """
    if cuda_visible is None:
        return list(devices)
    seen: list[tuple[int, str]] = []
    for entry in (e.strip() for e in cuda_visible.split(",")):
        match: tuple[int, str] | None = None
        if entry.isdigit():
            match = next((d for d in devices if d[0] == int(entry)), None)
        elif entry:
            wanted = entry if entry.upper().startswith(("GPU-", "MIG-")) else f"GPU-{entry}"
            hits = [d for d in devices if d[1].lower().startswith(wanted.lower())]
            match = hits[0] if len(hits) == 1 else None
        if match is None:
            break
        if match in seen:
            return []
        seen.append(match)
    return seen


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _nvml() -> Any | None:
    """The initialised `pynvml` module, or None (not installed, no driver, no GPU)."""
    try:
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when there is no driver: no GPU as far as we can tell
        return None
    return pynvml


def _try(fn: Any, *args: Any) -> Any:
    """An NVML query's value, or None where the device (or an older binding: `fn` None) does not support it."""
    try:
        return fn(*args)
    except Exception:
        return None


def _query(pynvml: Any, name: str, *args: Any) -> Any:
    return _try(getattr(pynvml, name, None), *args)


def _nvml_handle(pynvml: Any) -> tuple[Any, int, str, int] | None:
    """(handle, NVML index, UUID, visible count) of the device CUDA calls device 0, or None."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and any(e.strip().upper().startswith("MIG-") for e in cvd.split(",")):
        # a MIG instance: NVML finds it by its own UUID
        uuid = cvd.split(",")[0].strip()
        handle = _query(pynvml, "nvmlDeviceGetHandleByUUID", uuid)
        if handle is None:
            return None
        parent = _query(pynvml, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
        index = _query(pynvml, "nvmlDeviceGetIndex", parent) if parent is not None else None
        return handle, index if index is not None else -1, uuid, len(cvd.split(","))
    devices = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        devices.append((i, _text(pynvml.nvmlDeviceGetUUID(h))))
    visible = visible_gpus(devices, cvd)
    if not visible:
        return None
    index, uuid = visible[0]
    return pynvml.nvmlDeviceGetHandleByIndex(index), index, uuid, len(visible)


def _nvml_info(pynvml: Any) -> dict[str, Any]:
    found = _nvml_handle(pynvml)
    if found is None:
        return dict(_NO_GPU)
    h, index, uuid, count = found
    sm, mem = getattr(pynvml, "NVML_CLOCK_SM", 1), getattr(pynvml, "NVML_CLOCK_MEM", 2)
    cuda = _query(pynvml, "nvmlSystemGetCudaDriverVersion")
    mig = _query(pynvml, "nvmlDeviceGetMigMode", h)
    ecc = _query(pynvml, "nvmlDeviceGetEccMode", h)
    power = _query(pynvml, "nvmlDeviceGetPowerManagementLimit", h)
    memory = _query(pynvml, "nvmlDeviceGetMemoryInfo", h)
    persistence = _query(pynvml, "nvmlDeviceGetPersistenceMode", h)
    return {
        "gpu_name": _text(pynvml.nvmlDeviceGetName(h)),
        "gpu_driver": _text(pynvml.nvmlSystemGetDriverVersion()),
        "cuda": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
        "gpu_uuid": uuid,
        "gpu_index": index,
        "gpu_count": count,
        "gpu_source": "nvml",
        "gpu_memory_mib": memory.total // 2**20 if memory is not None else None,
        "gpu_mig": bool(mig[0]) if mig is not None else None,
        "gpu_ecc": bool(ecc[0]) if ecc is not None else None,
        "gpu_persistence": bool(persistence) if persistence is not None else None,
        "gpu_power_limit_w": power / 1000 if power is not None else None,
        "gpu_app_clocks_mhz": {
            "sm": _query(pynvml, "nvmlDeviceGetApplicationsClock", h, sm),
            "mem": _query(pynvml, "nvmlDeviceGetApplicationsClock", h, mem),
        },
        "gpu_max_clocks_mhz": {
            "sm": _query(pynvml, "nvmlDeviceGetMaxClockInfo", h, sm),
            "mem": _query(pynvml, "nvmlDeviceGetMaxClockInfo", h, mem),
        },
    }


def _smi_info() -> dict[str, Any]:
    """The little `nvidia-smi` can tell in one call, for machines without the NVML bindings."""
    info = dict(_NO_GPU)
    if not shutil.which("nvidia-smi"):
        return info
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip().splitlines()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return info
    rows = [[v.strip() for v in line.split(",")] for line in out if line.count(",") >= 3]
    by_index = {int(r[0]): r for r in rows if r[0].isdigit()}
    visible = visible_gpus([(i, r[1]) for i, r in by_index.items()], os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not visible:
        return info
    index, uuid = visible[0]
    row = by_index[index]
    return info | {
        "gpu_name": row[2],
        "gpu_driver": row[3],
        "gpu_uuid": uuid,
        "gpu_index": index,
        "gpu_count": len(visible),
        "gpu_source": "nvidia-smi",
    }


def gpu_info() -> dict[str, Any]:
    """Facts about the GPU cases run on (CUDA's device 0), through NVML; `gpu_name` None without one."""
    pynvml = _nvml()
    if pynvml is None:
        return _smi_info()
    try:
        return _nvml_info(pynvml)
    except Exception:  # an NVML error on a broken driver: fall back rather than fail a run
        return _smi_info()
    finally:
        _query(pynvml, "nvmlShutdown")


class GpuMonitor:
    """Samples temperature, SM clock and throttle reasons of the GPU cases run on (NVML; inert without)."""

    def __init__(self) -> None:
        self._nvml = _nvml()
        self._handle = None
        if self._nvml is not None:
            found = _try(_nvml_handle, self._nvml)
            self._handle = found[0] if found else None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def sample(self) -> dict[str, Any] | None:
        """{temp_c, sm_mhz, throttle (reason names), throttled} now, or None without NVML."""
        if self._nvml is None or self._handle is None:
            return None
        nv, h = self._nvml, self._handle
        reasons_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        bits = _try(reasons_fn, h) if reasons_fn else None
        names = sorted(name for bit, name in _REASONS.items() if bits and bits & bit)
        return {
            "temp_c": _query(nv, "nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)),
            "sm_mhz": _query(nv, "nvmlDeviceGetClockInfo", h, getattr(nv, "NVML_CLOCK_SM", 1)),
            "throttle": names,
            "throttled": bool(THROTTLING.intersection(names)),
        }

    @staticmethod
    def case_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
        """The `GPU_SAMPLE_KEYS` of one case from the samples taken before and after it ({} without NVML)."""
        if before is None or after is None:
            return {}
        return {
            "gpu_temp_c": [before["temp_c"], after["temp_c"]],
            "gpu_sm_mhz": [before["sm_mhz"], after["sm_mhz"]],
            "gpu_throttle": sorted(set(before["throttle"]) | set(after["throttle"])),
            "gpu_throttled": before["throttled"] or after["throttled"],
        }

    def close(self) -> None:
        if self._nvml is not None:
            _query(self._nvml, "nvmlShutdown")
            self._nvml = self._handle = None


def framework_runtime(framework: str) -> dict[str, Any]:
    """The CUDA runtime and cuDNN `framework` was built with (imports it: call in the worker).

    Values are None where the build has none (a CPU wheel) or does not say.
    """
    out: dict[str, Any] = {"cuda_runtime": None, "cudnn": None}
    try:
        if framework == "torch":
            import torch

            out["cuda_runtime"] = torch.version.cuda
            out["cudnn"] = (
                _dotted(torch.backends.cudnn.version(), "cudnn") if torch.backends.cudnn.is_available() else None
            )
        elif framework == "tensorflow":
            import tensorflow as tf

            build = tf.sysconfig.get_build_info()
            out["cuda_runtime"], out["cudnn"] = build.get("cuda_version"), build.get("cudnn_version")
        elif framework == "jax":
            import jax

            out["backend"] = jax.default_backend()
            versions = importlib.import_module("jax._src.lib").cuda_versions  # None without a CUDA plugin
            if versions is not None:
                out["cuda_runtime"] = _dotted(versions.cuda_runtime_get_version(), "cuda")
                out["cudnn"] = _dotted(versions.cudnn_get_version(), "cudnn")
    except Exception as exc:  # a version query must never fail a run; say why it is missing
        out["error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


def _dotted(v: Any, kind: str) -> str | None:
    """Integer versions as dotted strings: CUDA 12040 -> 12.4; cuDNN 90100 -> 9.1.0, 8902 -> 8.9.2."""
    if v is None or isinstance(v, str):
        return v
    v = int(v)
    if kind == "cuda":
        return f"{v // 1000}.{v % 1000 // 10}"
    if v >= 90000:  # cuDNN 9 and later: 10000*major + 100*minor + patch
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"  # cuDNN 8 and earlier: 1000*major + 100*minor + patch


def git_state(root: Path | None = None) -> tuple[str | None, bool]:
    """(commit sha, dirty?) of the repository rnnbench runs from, or (None, False) outside git.

    Outside git, `RNNBENCH_GIT_COMMIT` names the commit (dirty unknown, so False): a lent GPU machine
    gets a copy of the working tree without `.git`, and `scripts/gpu-check.sh --commit` passes it on.
    """
    root = root or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        return sha, bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("RNNBENCH_GIT_COMMIT") or None, False


def _slug(text: str) -> str:
    text = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|\bProcessor\b|@.*$|\bNVIDIA\b", " ", text)
    return "-".join(text.split())


def host_class() -> str:
    """The host as a kind of machine, not an instance: CPU model and core count."""
    return f"{_slug(cpu_model())}-{os.cpu_count() or 0}c"


def machine_name(gpu: dict[str, Any] | None = None) -> str:
    """What results are filed under: `RNNBENCH_MACHINE` (plus the GPU class), else GPU and host class, else hostname.

    A GPU machine is `<gpu>x<count>-<cpu>-<cores>c` (e.g.
    `H100-80GB-HBM3x1-AMD-EPYC-9454-16c`): nightly GPU runners are ephemeral,
    so their hostnames would split one machine's history into many. A CPU
    machine keeps its hostname, except under CI (`CI` set), where the runner
    is just as ephemeral.
    """
    gpu = gpu if gpu is not None else gpu_info()
    gpu_class = f"{_slug(gpu['gpu_name'])}x{gpu.get('gpu_count') or 1}" if gpu.get("gpu_name") else None
    if os.environ.get("RNNBENCH_MACHINE"):
        # the pipeline's shards share one name; the GPU class keeps different GPUs apart under it
        name = os.environ["RNNBENCH_MACHINE"] + (f"-{gpu_class}" if gpu_class else "")
    elif gpu_class:
        name = f"{gpu_class}-{host_class()}"
    elif os.environ.get("CI"):
        name = host_class()
    else:
        name = platform.node() or "unknown"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def blas_info() -> str | None:
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(libs) or None
    except Exception:  # threadpoolctl inspects native libraries; never fail a run over it
        return None


def fingerprint(threads: int | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to say which machine and software produced a result.

    `runtimes` (per framework: CUDA runtime, cuDNN) is empty here and filled
    by the runner from its workers; `cudnn` is the first framework's cuDNN.
    """
    import numpy  # noqa: F401  (so threadpoolctl sees numpy's BLAS)

    commit, dirty = git_state()
    gpu = gpu_info()
    pkgs = packages()
    fp: dict[str, Any] = {
        "machine": machine_name(gpu),
        "hostname": platform.node(),
        "host_class": host_class(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        **gpu,
        "cudnn": None,
        "runtimes": {},
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
        "blas": blas_info(),
        "frameworks": {name: v for name, dist in _PACKAGES.items() if (v := _version(dist))},
        "threads": threads or os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "packages": pkgs,
        "lock_digest": lock_digest(pkgs),
    }
    fp |= extra or {}
    return fp
