"""Synthetic runner documents that follow the `rnnbench-run` schema exactly, for report/compare tests.

Times come from a simple cost model (per-step GEMM work over a fixed rate,
plus a per-step overhead per formulation) with log-normal noise, so tests
know the true ratios they should recover.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rnnbench.case import Case

# per-step overheads (s) that make concat win small shapes and separate win large ones
_OVERHEAD = {"separate": 6e-6, "concat": 4e-6, "hoisted": 5e-6, "native": 3e-6}
_RATE = {"separate": 40e9, "concat": 34e9, "hoisted": 45e9, "native": 50e9}


def model_time(case: Case) -> float:
    """True median seconds of one call under the synthetic cost model."""
    return case.flops / _RATE[case.formulation] + case.seq_len * case.layers * _OVERHEAD[case.formulation]


def machine(name: str = "synth-box", commit: str | None = "ab" * 20) -> dict[str, Any]:
    return {
        "machine": name,
        "hostname": f"{name}.local",
        "cpu_model": "Synthetic CPU @ 3.0GHz",
        "cpu_cores": 2,
        "gpu_name": None,
        "gpu_driver": None,
        "cuda": None,
        "cudnn": None,
        "blas": "openblas 0.3.27",
        "frameworks": {"numpy": "2.4.6", "torch": "2.13.0+cpu"},
        "threads": 2,
        "python": "3.11.7",
        "os": "Linux-6.1-x86_64",
        "git_commit": commit,
        "git_dirty": False,
    }


def cases(
    frameworks: Iterable[str] = ("numpy", "torch"),
    cells: Iterable[str] = ("rnn", "gru"),
    batches: Iterable[int] = (1, 16, 64),
    hiddens: Iterable[int] = (64, 256),
    seq_lens: Iterable[int] = (16, 64),
) -> list[Case]:
    out = []
    for fw in frameworks:
        forms = ("separate", "concat", "hoisted") + (("native",) if fw != "numpy" else ())
        for cell in cells:
            for f in forms:
                for b in batches:
                    for h in hiddens:
                        for t in seq_lens:
                            out.append(Case(fw, "cpu", cell, f, "eager", "forward", b, h, h, t))
    return out


def record(
    case: Case,
    rng: np.random.Generator,
    scale: float = 1.0,
    noise: float = 0.03,
    n: int = 15,
    status: str = "ok",
    error: str | None = None,
    when: datetime | None = None,
    peak: float = 100.0,
) -> dict[str, Any]:
    d = case.to_dict()
    base = {
        "key": case.key,
        "framework": d["framework"],
        "device": d["device"],
        "cell": d["cell"],
        "variant": case.spec.label,
        "nonlinearity": d["nonlinearity"],
        "gru_update": d["gru_update"],
        "gru_reset": d["gru_reset"],
        "formulation": d["formulation"],
        "mode": d["mode"],
        "pass": d["pass"],
        "batch": d["batch"],
        "input_size": d["input_size"],
        "hidden": d["hidden"],
        "seq_len": d["seq_len"],
        "layers": d["layers"],
        "dtype": d["dtype"],
        "status": status,
        "error": error,
        "flops": case.flops,
        "threads": 2,
        "timestamp": (when or datetime(2026, 1, 1, tzinfo=timezone.utc)).isoformat(),
    }
    if status != "ok":
        nulls = ("median_s", "iqr_s", "mean_s", "number", "compile_s", "gflops", "peak_gflops", "peak_fraction")
        return {
            **base,
            **dict.fromkeys(nulls),
            "samples_s": [],
            "max_abs_error": None,
            "max_rel_error": None,
            "noisy": None,
        }
    samples = model_time(case) * scale * rng.lognormal(0.0, noise, n)
    med = float(np.median(samples))
    q25, q75 = np.percentile(samples, [25, 75])
    gflops = case.flops / med / 1e9
    return {
        **base,
        "median_s": med,
        "iqr_s": float(q75 - q25),
        "mean_s": float(samples.mean()),
        "samples_s": [float(s) for s in samples],
        "number": 10,
        "compile_s": None,
        "gflops": gflops,
        "peak_gflops": peak,
        "peak_fraction": gflops / peak,
        "max_abs_error": 1e-7,
        "max_rel_error": 1e-7,
        "noisy": bool((q75 - q25) / med > 0.1),
    }


def document(
    case_list: Iterable[Case],
    *,
    machine_name: str = "synth-box",
    commit: str | None = "ab" * 20,
    created: datetime | None = None,
    seed: int = 0,
    scale: Callable[[Case], float] = lambda c: 1.0,
    noise: float = 0.03,
    failures: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A complete `rnnbench-run` document; `failures` maps case keys to error messages."""
    rng = np.random.default_rng(seed)
    created = created or datetime(2026, 1, 1, tzinfo=timezone.utc)
    failures = failures or {}
    records = [
        record(c, rng, scale(c), noise, status="failed", error=failures[c.key], when=created)
        if c.key in failures
        else record(c, rng, scale(c), noise, when=created)
        for c in case_list
    ]
    return {
        "api_version": 1,
        "kind": "rnnbench-run",
        "run_id": uuid.UUID(int=rng.integers(2**63)).hex,
        "created": created.isoformat(),
        "finished": (created + timedelta(minutes=5)).isoformat(),
        "command": ["rnnbench", "run", "--preset", "quick"],
        "preset": "quick",
        "shard": None,
        "machine": machine(machine_name, commit),
        "peaks": [
            {"framework": fw, "device": "cpu", "dtype": "float32", "n": 1024, "median_s": 0.02, "gflops": 100.0}
            for fw in ("numpy", "torch")
        ],
        "records": records,
    }


def nightly(case_list: Iterable[Case], night: int, first: datetime, **options: Any) -> dict[str, Any]:
    """Run `night` (0, 1, ...) of a daily history that starts at `first`, with its own seed, date and
    commit (`f"{night:02x}" * 20`); `options` as `document`'s."""
    created = first + timedelta(days=night)
    return document(case_list, seed=night, commit=f"{night:02x}" * 20, created=created, **options)


def write(doc: dict[str, Any], root: Path) -> Path:
    """Store `doc` where the runner would: results/runs/<machine>/<stamp>-<commit8>-<runid8>.json."""
    created = datetime.fromisoformat(doc["created"])
    commit8 = (doc["machine"]["git_commit"] or "nocommit")[:8]
    folder = root / "runs" / doc["machine"]["machine"].replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{created:%Y%m%dT%H%M%S}-{commit8}-{doc['run_id'][:8]}.json"
    path.write_text(json.dumps(doc))
    return path
