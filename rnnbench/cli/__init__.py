"""The `rnnbench` command line: the only package that knows argparse.

`main` builds the parser from one module per command (each with `add_parser`
and `run`), turns a `UsageError` anywhere into one line on stderr and exit 2,
and Ctrl-C into one line and exit 130. Shared flags and the validators that
argparse calls (`type=`) live in `options`, so bad input fails while the
arguments are parsed, before any slow work starts.
"""

from __future__ import annotations

from rnnbench.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
