"""How fast can a large results folder be read and validated: stdlib dataclasses (rnnbench's model) vs pydantic v2
vs msgspec.

Synthesises a folder of run documents like the runner writes (two rounds per case, ~75 samples per record),
then times, best of `--repeat`, reading every file into validated objects:

- `json`: `json.loads` alone, the floor every stdlib-based reader pays;
- `dataclasses`: `rnnbench.sweep.records.RunDocument.from_json(json.loads(text))`, the real reader, with
  its consistency checks (stored statistics against the samples);
- `pydantic`, `msgspec` (when installed): models of the same fields and per-field constraints (types,
  finite positive times, sizes >= 1), decoding straight from the file's bytes. They do not recompute
  statistics, so they measure the cheapest those libraries could be.

It prints seconds per 1,000 records and how long `import` of each library takes in a fresh interpreter.

Usage (from the repository root):
    PYTHONPATH=. python scripts/measure_record_load.py [--docs 20] [--records 200] [--repeat 3]
pydantic and msgspec are not rnnbench dependencies: install them into a scratch environment to compare.
"""

import argparse
import json
import keyword
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np

from rnnbench.case import Case
from rnnbench.sweep.records import Record, RunDocument, Samples


def synthesise(folder: Path, docs: int, records: int, samples: int) -> int:
    rng = np.random.default_rng(0)
    machine = {"machine": "synth", "git_commit": "ab" * 20, "git_dirty": False, "threads": 2, "cpu_cores": 2,
               "frameworks": {"numpy": "2.4"}, "cpu_model": "cpu", "python": "3.11", "os": "linux"}  # fmt: skip
    cases = [
        Case("numpy", "cpu", cell, form, "eager", "forward", b, h, h, t)
        for cell in ("rnn", "gru", "lstm")
        for form in ("separate", "concat", "hoisted")
        for b in (1, 4, 16, 64)
        for h in (32, 64, 128, 256, 512)
        for t in (8, 16, 32, 64, 128)
    ][:records]
    for d in range(docs):
        recs = []
        for case in cases:
            half = samples // 2
            s = Samples.of(rng.lognormal(-7, 0.05, half), rng.lognormal(-7, 0.05, samples - half))
            recs.append(Record.measured(case, "ok", threads=2, samples=s, number=10, compile_s=0.01, timed_s=0.5,
                                        noise_threshold=0.05, timestamp="2026-01-01T00:00:00+00:00"))  # fmt: skip
        doc = RunDocument(run_id=f"{d:032x}", created="2026-01-01T00:00:00+00:00", machine=machine, records=tuple(recs))
        (folder / f"run{d}.json").write_text(json.dumps(doc.to_json(), indent=1))
    return docs * len(cases)


def record_fields(seconds: Any, spread: Any, size: Any) -> list[tuple[str, Any, bool]]:
    """(name in the file, type, required) of every record field both models check, in the runner's order.

    `seconds`, `spread` and `size` are each library's own constrained types: a finite time above 0, a spread
    of at least 0, a size of at least 1. The one optional field comes last: msgspec wants fields with a
    default after those without.
    """
    return [
        *((name, str, True) for name in ("key", "framework", "device", "cell", "formulation", "mode", "pass")),
        *((name, size, True) for name in ("batch", "input_size", "hidden", "seq_len", "layers")),
        ("dtype", str, True),
        ("status", Literal["ok", "failed", "skipped"], True),
        ("samples_s", list[seconds], True),
        ("median_s", seconds | None, True),
        ("iqr_s", spread | None, True),
        ("mean_s", seconds | None, True),
        ("number", size | None, True),
        ("timestamp", str | None, True),
        ("round_samples_s", list[list[seconds]] | None, False),
    ]


def document_fields(record: Any) -> list[tuple[str, Any, bool]]:
    """The run document's fields, as `record_fields` gives a record's, with `record` the library's record model."""
    return [
        ("api_version", Literal[1], True),
        ("kind", Literal["rnnbench-run"], True),
        ("run_id", str, True),
        ("created", str, True),
        ("machine", dict[str, Any], True),
        ("records", list[record], True),
    ]


def _attribute(name: str) -> str:
    """A field's Python name: `pass` is a keyword, so its attribute is `pass_` (the file keeps `pass`)."""
    return f"{name}_" if keyword.iskeyword(name) else name


def pydantic_reader() -> Callable[[bytes], Any] | None:
    try:
        from pydantic import ConfigDict, Field, TypeAdapter, create_model
    except ImportError:
        return None
    seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
    spread = Annotated[float, Field(ge=0, allow_inf_nan=False)]
    size = Annotated[int, Field(ge=1, strict=True)]

    def model(name: str, fields: list[tuple[str, Any, bool]], config: ConfigDict) -> Any:
        return create_model(
            name,
            __config__=config,
            **{_attribute(f): (t, Field(alias=f) if req else Field(None, alias=f)) for f, t, req in fields},
        )

    record = model("PRecord", record_fields(seconds, spread, size), ConfigDict(extra="allow", strict=True))
    doc = model("PDoc", document_fields(record), ConfigDict(extra="allow"))
    return TypeAdapter(doc).validate_json


def msgspec_reader() -> Callable[[bytes], Any] | None:
    try:
        import msgspec
    except ImportError:
        return None
    seconds = Annotated[float, msgspec.Meta(gt=0)]
    spread = Annotated[float, msgspec.Meta(ge=0)]
    size = Annotated[int, msgspec.Meta(ge=1)]

    def struct(name: str, fields: list[tuple[str, Any, bool]]) -> Any:
        return msgspec.defstruct(
            name,
            [
                (_attribute(f), t, msgspec.field(name=f) if req else msgspec.field(default=None, name=f))
                for f, t, req in fields
            ],
            forbid_unknown_fields=False,
        )

    record = struct("MRecord", record_fields(seconds, spread, size))
    return msgspec.json.Decoder(struct("MDoc", document_fields(record))).decode


def import_time(module: str) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(res.stdout) if res.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--samples", type=int, default=75)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n = synthesise(folder, args.docs, args.records, args.samples)
        blobs = [p.read_bytes() for p in sorted(folder.glob("*.json"))]
        size = sum(map(len, blobs)) / 1e6
        readers: dict[str, Callable[[bytes], Any] | None] = {
            "json": json.loads,
            "dataclasses": lambda b: RunDocument.from_json(json.loads(b)),
            "pydantic": pydantic_reader(),
            "msgspec": msgspec_reader(),
        }
        print(f"{args.docs} documents, {n} records, {size:.1f} MB")
        for name, read in readers.items():
            if read is None:
                print(f"{name:12s} not installed")
                continue
            best = min(_timed(lambda read=read: [read(b) for b in blobs]) for _ in range(args.repeat))
            print(f"{name:12s} {best / n * 1000:.3f} s per 1000 records ({best:.2f} s in all)")
        for module in ("rnnbench.sweep.records", "pydantic", "msgspec"):
            t = import_time(module)
            print(f"import {module}: " + ("not installed" if t is None else f"{t * 1000:.0f} ms"))


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
