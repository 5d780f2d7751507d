"""A worker entry point that misbehaves on purpose, for the runner's isolation and lifecycle tests.

hidden=13: the process dies without a word; hidden=17: it hangs;
hidden=19: the kernel raises inside the framework call; hidden=23: the kernel
raises a CUDA illegal-address error and poisons the process (every later call
in it fails the same way, as a real CUDA context would); hidden=29: the case
dies in its second round. With `RNNBENCH_FAULTY_PEAK=FILE:N` the first N peak
probes (counted in FILE, across worker processes) kill their worker.
Everything else is the real worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep.worker import worker_main

POISON = "RuntimeError: CUDA error: an illegal memory access was encountered"


def _peak_should_fail() -> bool:
    spec = os.environ.get("RNNBENCH_FAULTY_PEAK")
    if not spec:
        return False
    path, _, n = spec.rpartition(":")
    counter = Path(path)
    done = int(counter.read_text() or 0) if counter.exists() else 0
    counter.write_text(str(done + 1))
    return done < int(n)


class _Faulty:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.seen: set[str] = set()

    def recv(self) -> Any:
        msg = self.conn.recv()
        if msg.get("op") == "peak" and _peak_should_fail():
            os._exit(9)
        hidden = msg.get("case", {}).get("hidden")
        if hidden == 13:
            os._exit(7)
        if hidden == 17:
            time.sleep(3600)
        if hidden == 29 and msg.get("op") == "case":  # timed rounds only, not the runner's warm-up pass
            key = msg["case"]["formulation"]
            if key in self.seen:
                os._exit(5)  # the second round of this case
            self.seen.add(key)
        return msg

    def send(self, obj: Any) -> None:
        self.conn.send(obj)


def faulty_worker(conn: Any, threads: int, config: TimingConfig, parent_pid: int | None = None) -> None:
    from rnnbench.backends.numpy import NumpyBackend

    real = NumpyBackend._build
    poisoned = []

    def build(self, case, weights, x, state0):  # type: ignore[no-untyped-def]
        if poisoned:
            raise RuntimeError(POISON.split(": ", 1)[1])
        kernel = real(self, case, weights, x, state0)
        if case.hidden not in (19, 23):
            return kernel

        def boom() -> Any:
            if case.hidden == 23:
                poisoned.append(True)
                raise RuntimeError(POISON.split(": ", 1)[1])
            raise FloatingPointError("injected failure inside the kernel")

        return type(kernel)(case, boom, kernel.fetch)

    NumpyBackend._build = build  # type: ignore[method-assign]
    worker_main(_Faulty(conn), threads, config, parent_pid)
