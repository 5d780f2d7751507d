"""What this test machine has: the one place tests ask whether a CUDA GPU is visible."""

from __future__ import annotations

__all__ = ["HAS_CUDA"]


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


HAS_CUDA = _has_cuda()
