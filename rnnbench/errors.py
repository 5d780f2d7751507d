"""Exceptions rnnbench raises on purpose.

`UsageError` is bad input from a person (an unknown framework, a negative
size, a device that is not here): the CLI prints its message on one line and
exits 2. `Unsupported` says a backend cannot build a case at all (no native
layer for that cell variant, no autograd in numpy); sweeps record it as
`skipped` rather than failed.
"""

from __future__ import annotations

__all__ = ["Unsupported", "UsageError"]


class UsageError(ValueError):
    """Bad input; the message is one line meant for the person who typed it."""


class Unsupported(NotImplementedError):
    """The framework cannot build this case (a reason, not a bug)."""
