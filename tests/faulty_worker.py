"""A worker entry point that misbehaves on purpose, for the runner's isolation tests.

hidden=13: the process dies without a word; hidden=17: it hangs;
hidden=19: the kernel raises inside the framework call. Everything else is the real worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep.worker import worker_main


class _Faulty:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def recv(self) -> Any:
        msg = self.conn.recv()
        hidden = msg.get("case", {}).get("hidden")
        if hidden == 13:
            os._exit(7)
        if hidden == 17:
            time.sleep(3600)
        return msg

    def send(self, obj: Any) -> None:
        self.conn.send(obj)


def faulty_worker(conn: Any, threads: int, config: TimingConfig) -> None:
    from rnnbench.backends.numpy import NumpyBackend

    real = NumpyBackend._build

    def build(self, case, weights, x, state0):  # type: ignore[no-untyped-def]
        kernel = real(self, case, weights, x, state0)
        if case.hidden != 19:
            return kernel

        def boom() -> Any:
            raise FloatingPointError("injected failure inside the kernel")

        return type(kernel)(case, boom, kernel.fetch)

    NumpyBackend._build = build  # type: ignore[method-assign]
    worker_main(_Faulty(conn), threads, config)
