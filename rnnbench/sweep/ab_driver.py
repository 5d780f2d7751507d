"""The worker loop `rnnbench ab` runs inside each side's own interpreter: JSON lines in, JSON lines out.

This file is sent as source (`python -c`) to the interpreter of a side, so it
must run against *that side's* rnnbench, whatever its version: it imports
only long-standing entry points (with fallbacks for the pre-0.2 flat layout)
and filters the timing settings down to the fields that side's
`TimingConfig` knows. It never imports the parent's code. The protocol's
stdout is a private copy of file descriptor 1; fd 1 itself is pointed at
stderr, so a framework printing to stdout cannot corrupt a message.

Messages: `{"op": "hello", "threads": N}` -> `{"rnnbench": path, "machine": fingerprint, "stepped": bool}`;
`{"op": "case", "case": {...}, "config": {...}}` -> a result record (one round, timed in one go), in its
JSON form (`Record.to_json`; a side whose worker returns record dicts sends those as they are);
`{"op": "exit"}` ends the loop. Sides whose rnnbench has `worker.open_case` (`stepped`: true) also
take one case a few samples at a time, so the parent can alternate BASE and NEW in turns:
`{"op": "open", "case": {...}, "config": {...}}` -> `{"number": calls per sample}`, or
`{"record": {...}}` when the case cannot be timed (skipped, inaccurate, failed);
`{"op": "sample", "number": N, "count": K, "rewarm": R}` -> `{"s": [per-call seconds of K samples]}`,
taken after R samples that are neither kept nor returned (they re-warm the caches); `{"op": "close"}` -> the record.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import sys
from typing import Any


def _first(*names: str) -> Any:
    """The first `module:attribute` among `names` that this side's rnnbench package itself holds.

    A module is only tried when its file lies inside the imported `rnnbench`
    package: an editable install of another checkout can otherwise serve a
    submodule the package lacks (an old revision has no `rnnbench/measure/`),
    silently mixing two versions in one worker.
    """
    import rnnbench

    root = os.path.dirname(os.path.abspath(rnnbench.__file__))
    for name in names:
        module, _, attr = name.partition(":")
        rel = os.path.join(root, *module.split(".")[1:])
        if not (os.path.isfile(rel + ".py") or os.path.isfile(os.path.join(rel, "__init__.py"))):
            continue
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {', '.join(names)} is in {root}")


def _plain(record: Any) -> Any:
    """A record in its JSON form: a typed record's `to_json`, a dict (an older side's worker) as it is."""
    return record.to_json() if hasattr(record, "to_json") else record


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import rnnbench

    case_cls = _first("rnnbench.case:Case", "rnnbench.cells:Case")
    measure_case = _first("rnnbench.sweep.worker:measure_case", "rnnbench.worker:measure_case")
    config_cls = _first("rnnbench.measure.timing:TimingConfig", "rnnbench.timing:TimingConfig")
    fingerprint = _first("rnnbench.measure.machine:fingerprint", "rnnbench.machine:fingerprint")
    apply_threads = _first("rnnbench.measure.threads:apply_threads", "rnnbench.threads:apply_threads")
    try:  # a case held open, one sample at a time; with re-warming samples that are not kept
        open_case = _first("rnnbench.sweep.worker:open_case")
        held_cls = _first("rnnbench.sweep.worker:SteppedCase")
        if "keep" not in inspect.signature(held_cls.sample).parameters:
            open_case = None  # an early form of the protocol (December 2026, between releases): round by round
    except ImportError:
        open_case = None
    known = {f.name for f in dataclasses.fields(config_cls)}
    cache: dict[str, Any] = {}
    threads = 1
    held: Any = None
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "exit":
            return
        if op == "hello":
            threads = int(msg["threads"])
            apply_threads(threads)
            reply = {"rnnbench": str(rnnbench.__file__), "machine": fingerprint(threads), "stepped": bool(open_case)}
        elif op == "case":
            case = case_cls.from_dict(msg["case"])
            config = config_cls(**{k: v for k, v in msg["config"].items() if k in known})
            try:
                reply = _plain(measure_case(case, config, threads, None, cache))
            except TypeError:  # an older worker without the kernel cache
                reply = _plain(measure_case(case, config, threads, None))
        elif op == "open" and open_case is not None:
            case = case_cls.from_dict(msg["case"])
            config = config_cls(**{k: v for k, v in msg["config"].items() if k in known})
            held = open_case(case, config, threads, cache)
            if hasattr(held, "sample"):
                reply = {"number": held.number}
            else:  # a case that cannot be timed: its record
                reply, held = {"record": _plain(held)}, None
        elif op == "sample" and hasattr(held, "sample"):
            try:
                n = int(msg["number"])
                for _ in range(int(msg.get("rewarm", 0))):
                    held.sample(n, False)
                reply = {"s": [held.sample(n) for _ in range(int(msg.get("count", 1)))]}
            except Exception as exc:  # a framework error mid-case fails this case only
                reply = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        elif op == "close" and hasattr(held, "sample"):
            reply, held = _plain(held.record()), None
        else:
            reply = {"error": f"unknown op {op!r}"}
        proto.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
