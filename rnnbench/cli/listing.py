"""`rnnbench list`: the frameworks installed here, their devices and modes, and the presets' sizes."""

from __future__ import annotations

import argparse

from rnnbench.display import format_table

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench import backends
    from rnnbench.case import FRAMEWORKS
    from rnnbench.measure.machine import machine_name
    from rnnbench.sweep.grid import PRESETS, expand

    installed = backends.available()
    rows: list[list[object]] = []
    for name in FRAMEWORKS:
        if name in installed:
            b = backends.get(name)
            devices = ", ".join(b.devices()) if args.devices else "cpu (+cuda if visible; --devices to check)"
            rows.append([name, "yes", devices, ", ".join(b.modes), ", ".join(b.dtypes)])
        else:
            rows.append([name, "no", "", "", ""])
    print(format_table(["framework", "installed", "devices", "modes", "dtypes"], rows))
    print(f"\nmachine: {machine_name()}\n")
    rows = []
    for name, grid in PRESETS.items():
        cases, skipped = expand(grid, installed)
        rows.append([name, len(cases), len(skipped), ", ".join(grid.devices)])
    print(format_table(["preset", "cases", "not applicable", "devices"], rows))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("list", help="frameworks, devices and presets available here")
    p.add_argument("--devices", action="store_true", help="import each framework to check its devices")
    p.set_defaults(func=run)
