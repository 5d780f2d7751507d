"""Measuring one kernel: the timing engine, verification against the reference, threads, the machine and its load.

Needs numpy only; a framework is imported by the backend that builds the kernel.
"""
