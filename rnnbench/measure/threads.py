"""One thread count for every framework: torch, TensorFlow, JAX/XLA and the BLAS numpy uses.

Fair comparisons need the same threads everywhere. Environment variables are
set before any framework is imported (TF and XLA read them only at start-up,
which is one reason cases run in fresh worker processes); libraries already
loaded are limited through their own calls and threadpoolctl.
"""

from __future__ import annotations

import os
import sys

__all__ = ["apply_threads"]

_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def apply_threads(n: int) -> None:
    """Limit this process to `n` compute threads (call before importing frameworks where possible)."""
    for var in _ENV:
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if n == 1 else "2"
    if n == 1:  # XLA's CPU backend has no thread-count flag, only "single-threaded Eigen or not"
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
            )
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
