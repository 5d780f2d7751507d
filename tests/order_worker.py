"""A worker entry point that logs every message it receives, for the runner's round-order tests.

Each line of the file named by RNNBENCH_TEST_ORDER_LOG is `<op> <case key>`; everything else is the real worker.
"""

from __future__ import annotations

import os
from typing import Any

from rnnbench.case import Case
from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep.worker import worker_main

LOG_ENV = "RNNBENCH_TEST_ORDER_LOG"


class _Logging:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def recv(self) -> Any:
        msg = self.conn.recv()
        if "case" in msg:
            with open(os.environ[LOG_ENV], "a") as f:
                f.write(f"{msg['op']} {Case.from_dict(msg['case']).key}\n")
        return msg

    def send(self, obj: Any) -> None:
        self.conn.send(obj)


def order_worker(conn: Any, threads: int, config: TimingConfig, parent_pid: int | None = None) -> None:
    worker_main(_Logging(conn), threads, config, parent_pid)
