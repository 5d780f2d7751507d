"""Measuring one kernel: the timing engine, verification against the reference, threads and the machine.

Needs numpy only; a framework is imported by the backend that builds the kernel.
"""
