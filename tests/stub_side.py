"""A stand-in for one side of `rnnbench ab`: it speaks `ab_driver.py`'s protocol, with drawn samples, not timed ones.

`ab` starts a side as `<python> -c <driver source>`; `stub_interpreter` writes
an executable that takes that place and runs this file instead (the source is
ignored). The side is `stepped` (it holds a case open and answers `sample` in
turns), its fingerprint is this machine's, and its records are the real
worker's (`worker.make_record`), so everything `ab` does around the samples
(interleaving, rounds, extra rounds, documents, the paired verdict) runs as in
a real A/B. Only the numbers are controlled: every sample of a case is
BASE_S x the worker's own self-test factor for its formulation
(`RNNBENCH_SELFTEST_SLOWDOWN`, so a test plants a slowdown exactly as it would
for a real worker) x log-normal noise of sigma `RNNBENCH_STUB_NOISE` (default
1%), drawn from a generator seeded by `RNNBENCH_STUB_SEED`, the case and the
round. So a verdict's outcome follows from the planted factor and the noise,
never from how busy the machine is.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any

BASE_S = 1e-4  # per-call seconds of every case before its factor
NOISE_ENV = "RNNBENCH_STUB_NOISE"
SEED_ENV = "RNNBENCH_STUB_SEED"


def stub_interpreter(where: Path) -> str:
    """An executable at `where` that `ab` can start as a side's Python interpreter; it runs this stub."""
    where.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    where.chmod(0o755)
    return str(where)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's rnnbench, whatever the cwd
    import numpy as np

    from rnnbench.case import Case
    from rnnbench.measure.machine import fingerprint
    from rnnbench.measure.timing import Measurement
    from rnnbench.sweep.worker import make_record, selftest_factor, timing_fields

    noise = float(os.environ.get(NOISE_ENV, "0.01"))
    seed = int(os.environ.get(SEED_ENV, "0"))
    opened: dict[str, int] = {}  # rounds opened per case key: each round draws its own samples
    threads = 1
    case: Case | None = None
    rng = np.random.default_rng(seed)
    taken: list[float] = []
    for line in sys.stdin:
        msg: dict[str, Any] = json.loads(line)
        op = msg.get("op")
        reply: dict[str, Any]
        if op == "exit":
            return
        if op == "hello":
            threads = int(msg["threads"])
            reply = {"rnnbench": "stub", "machine": fingerprint(threads), "stepped": True}
        elif op == "open":
            case = Case.from_dict(msg["case"])
            opened[case.key] = opened.get(case.key, 0) + 1
            rng = np.random.default_rng([seed, zlib.crc32(case.key.encode()), opened[case.key]])
            taken = []
            reply = {"number": 1}
        elif op == "sample" and case is not None:
            level = BASE_S * selftest_factor(case.formulation)
            drawn = (level * rng.lognormal(0.0, noise, int(msg.get("count", 1)))).tolist()
            taken += drawn
            reply = {"s": drawn}
        elif op == "close" and case is not None:
            m = Measurement(tuple(taken), 1, 0.0, 0)
            # the record's JSON form, as the real worker sends it (`ab_driver._plain`)
            reply = make_record(case, "ok", threads=threads, m=m).to_json() | timing_fields(m)
            if selftest_factor(case.formulation) != 1.0:
                reply["selftest_slowdown"] = selftest_factor(case.formulation)
            case = None
        else:
            reply = {"error": f"unknown op {op!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
