"""The machine fingerprint stored with every result: hardware, software versions, threads, git state.

Everything here is read without importing a framework where possible
(`importlib.metadata` for versions); GPU facts come from `nvidia-smi` when it
exists. `machine_name` is what results are filed under: the hostname, plus the
GPU model when there is one (asv's machine files have no GPU field, so the
nightly GPU runners use the same convention there).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["fingerprint", "git_state", "gpu_info", "machine_name"]

_PACKAGES = {
    "numpy": "numpy",
    "torch": "torch",
    "tensorflow": "tensorflow-cpu",
    "jax": "jax",
    "jaxlib": "jaxlib",
    "keras": "keras",
}


def _version(dist: str) -> str | None:
    for name in (dist, dist.replace("-cpu", "")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> dict[str, str | None]:
    """GPU name, driver and CUDA version from nvidia-smi (all None without one)."""
    info: dict[str, str | None] = {"gpu_name": None, "gpu_driver": None, "cuda": None}
    if not shutil.which("nvidia-smi"):
        return info
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip().splitlines()  # fmt: skip
        if out:
            name, driver = (v.strip() for v in out[0].split(",", 1))
            info |= {"gpu_name": name, "gpu_driver": driver}
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
        if "CUDA Version:" in header:
            info["cuda"] = header.split("CUDA Version:")[1].split()[0]
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return info


def git_state(root: Path | None = None) -> tuple[str | None, bool]:
    """(commit sha, dirty?) of the repository rnnbench runs from, or (None, False) outside git."""
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
        return None, False


def machine_name() -> str:
    """Hostname, plus the GPU model when there is one (e.g. `node7-NVIDIA-H100`)."""
    name = os.environ.get("RNNBENCH_MACHINE") or platform.node() or "unknown"
    gpu = gpu_info()["gpu_name"]
    if gpu:
        name += "-" + "-".join(gpu.replace("NVIDIA ", "NVIDIA-").split()[:2])
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def blas_info() -> str | None:
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(libs) or None
    except Exception:  # threadpoolctl inspects native libraries; never fail a run over it
        return None


def fingerprint(threads: int | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to say which machine and software produced a result."""
    import numpy  # noqa: F401  (so threadpoolctl sees numpy's BLAS)

    commit, dirty = git_state()
    fp: dict[str, Any] = {
        "machine": machine_name(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        **gpu_info(),
        "cudnn": None,
        "blas": blas_info(),
        "frameworks": {name: v for name, dist in _PACKAGES.items() if (v := _version(dist))},
        "threads": threads or os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
    }
    fp |= extra or {}
    return fp
