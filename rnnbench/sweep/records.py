"""The typed model of a run document: `RunDocument`, `Record`, `Samples`, `Peak` and the header objects
(`ABHeader`, `PeakFailure`), their validation and statistics.

This module owns what an `rnnbench-run` document is (`KIND`, `API_VERSION`),
how one is read (every record validated field by field; a malformed record
is left out with a `Problem` naming the field, never an exception for the
rest), how every statistic a record stores is computed from its samples
(`Samples`: median, IQR, mean, quartiles, per-round medians; `Record.merge`
adds a later round), and how every `api_version` ever written is read.
A process boundary crosses here too: a record sent as JSON (`rnnbench ab`'s
sides) is `to_json` on one end and `from_json` on the other. Only
version 1 has been written; within it, fields were added over time
(`timed_s`, `wall_s`, `noise_threshold`, `rounds`, `round_medians_s`, now `round_samples_s`), and
a document without one reads as before (see `Record.from_json`); so does one
without the header's `grid`, the latest (only `merge` needs it). The on-disk
form is the JSON `Record.to_json` writes: `samples_s` holds every sample,
round after round, and `round_samples_s` the same samples as one list per
round (what `rnnbench ab` and the landing page read).

Plain dataclasses with hand-written checks, not pydantic or msgspec: the core
package (the runner, the store) must import with numpy alone, and reading a
large results folder is dominated by `json.loads`, not by the checks
(`scripts/measure_record_load.py` measures both; docs/analysis.md says how).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from rnnbench.case import Case
from rnnbench.errors import UsageError
from rnnbench.measure.timing import is_noisy, quartiles

__all__ = [
    "API_VERSION",
    "KIND",
    "READABLE_API_VERSIONS",
    "RECORD_FIELDS",
    "STATUSES",
    "ABHeader",
    "DocumentError",
    "Peak",
    "PeakFailure",
    "Problem",
    "Record",
    "RecordError",
    "RunDocument",
    "Samples",
]

KIND = "rnnbench-run"
API_VERSION = 1
READABLE_API_VERSIONS = (1,)
STATUSES = ("ok", "failed", "inaccurate", "skipped")  # inaccurate: measured, but outside the reference tolerance
# relative tolerance when a stored statistic is checked against the one recomputed from the samples
_TOLERANCE = 1e-6

# Fields every record has on disk (the case, the statistics, provenance), in the order they are written.
RECORD_FIELDS = (
    "key", "framework", "device", "cell", "variant", "nonlinearity", "gru_update", "gru_reset", "formulation",
    "mode", "pass", "batch", "input_size", "hidden", "seq_len", "layers", "dtype",
    "median_s", "iqr_s", "mean_s", "samples_s", "number", "compile_s", "flops", "gflops", "peak_gflops",
    "peak_fraction", "max_abs_error", "max_rel_error", "noisy", "status", "error", "threads", "timestamp",
)  # fmt: skip
_CASE_STRINGS = ("framework", "device", "cell", "formulation", "mode", "pass", "dtype")
_CASE_OPTIONS = ("nonlinearity", "gru_update", "gru_reset")
_CASE_SIZES = ("batch", "input_size", "hidden", "seq_len", "layers")
_CASE_FIELDS = frozenset(Case().to_dict())
# written by the model itself; everything else in a record is kept verbatim in `Record.extra`
_OWN_FIELDS = frozenset(RECORD_FIELDS) | {
    "timed_s", "wall_s", "noise_threshold", "rounds", "round_medians_s", "round_samples_s",
    "machine_peak_gflops", "bandwidth_gbps",
}  # fmt: skip


class RecordError(ValueError):
    """One field of a record (or document) is malformed; `field` names it."""

    def __init__(self, field_name: str, reason: str) -> None:
        self.field = field_name
        super().__init__(f"field {field_name!r}: {reason}")


class DocumentError(RecordError):
    """The document as a whole cannot be read (its header, machine or records list is malformed)."""


@dataclass(frozen=True)
class Problem:
    """A record left out of a document, and why (for the one-line warning)."""

    index: int
    field: str
    reason: str
    what: str = "record"

    def __str__(self) -> str:
        return f"{self.what} {self.index}: field {self.field!r}: {self.reason}"


# -- field checks ---------------------------------------------------------------------------------------


def _text(d: Mapping[str, Any], name: str, optional: bool = True) -> str | None:
    v = d.get(name)
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise RecordError(name, f"must be text, got {_show(v)}")
    return v


def _integer(d: Mapping[str, Any], name: str, minimum: int | None = None, optional: bool = True) -> int | None:
    v = d.get(name)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RecordError(name, f"must be an integer, got {_show(v)}")
    if minimum is not None and v < minimum:
        raise RecordError(name, f"must be at least {minimum}, got {v}")
    return v


def _number(v: object, name: str, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RecordError(name, f"must be a number, got {_show(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise RecordError(name, f"must be finite, got {x}")
    if positive and x <= 0:
        raise RecordError(name, f"must be positive, got {x}")
    return x


def _real(d: Mapping[str, Any], name: str, positive: bool = False, nonnegative: bool = False) -> float | None:
    v = d.get(name)
    if v is None:
        return None
    x = _number(v, name, positive)
    if nonnegative and x < 0:
        raise RecordError(name, f"must not be negative, got {x}")
    return x


def _flag(d: Mapping[str, Any], name: str) -> bool | None:
    v = d.get(name)
    if v is not None and not isinstance(v, bool):
        raise RecordError(name, f"must be true, false or null, got {_show(v)}")
    return v


def _timestamp(d: Mapping[str, Any], name: str, optional: bool = True) -> str | None:
    text = _text(d, name, optional)
    if text is not None:
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise RecordError(name, f"must be an ISO 8601 date and time, got {_show(text)}") from None
    return text


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _close(stored: float | None, derived: float, name: str, scale: float) -> None:
    """A stored statistic must be the one its samples give (`scale`: the size a relative tolerance is taken of)."""
    if stored is not None and abs(stored - derived) > _TOLERANCE * max(abs(scale), abs(derived)) + 1e-300:
        raise RecordError(name, f"{stored!r} disagrees with its samples ({derived!r})")


# -- statistics -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Per-call seconds of one case, nested in rounds (one tuple per sweep over its group), in the order taken.

    Every statistic a record stores is computed here, from the sample
    statistics of `measure.timing` (`quartiles`, `is_noisy`: the ones the
    timing engine stops on). The quartiles are the inclusive
    (linear-interpolation) ones, numpy's default `percentile`; with one
    sample the IQR is 0.
    """

    rounds: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if not self.rounds or any(not r for r in self.rounds):
            raise RecordError("samples_s", "a measurement needs at least one sample in every round")
        _check_times(self.flat, "samples_s")

    @classmethod
    def _checked(cls, rounds: tuple[tuple[float, ...], ...]) -> Samples:
        """From rounds of floats already checked finite and positive (the reader's; skips checking twice)."""
        if not rounds or any(not r for r in rounds):
            raise RecordError("samples_s", "a measurement needs at least one sample in every round")
        samples = object.__new__(cls)
        object.__setattr__(samples, "rounds", rounds)
        return samples

    @classmethod
    def of(cls, samples: Sequence[float], *rounds: Sequence[float]) -> Samples:
        """Samples of one round (more rounds as further arguments)."""
        return cls(tuple(tuple(float(s) for s in r) for r in (samples, *rounds)))

    def merge(self, later: Samples) -> Samples:
        """These rounds followed by `later`'s (a later sweep over the same case)."""
        return Samples(self.rounds + later.rounds)

    # cached: a record's statistics are read many times (checks, to_json, the frame)
    @functools.cached_property
    def flat(self) -> tuple[float, ...]:
        return tuple(itertools.chain.from_iterable(self.rounds))

    @functools.cached_property
    def median_s(self) -> float:
        return statistics.median(self.flat)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.flat)

    @functools.cached_property
    def quartiles_s(self) -> tuple[float, float]:
        q1, _, q3 = quartiles(self.flat)
        return q1, q3

    @property
    def iqr_s(self) -> float:
        q25, q75 = self.quartiles_s
        return q75 - q25

    @property
    def round_medians_s(self) -> tuple[float, ...]:
        return tuple(statistics.median(r) for r in self.rounds)

    def noisy(self, threshold: float) -> bool:
        """IQR/median above `threshold`: the timing engine could not settle this case (`timing.is_noisy`)."""
        return is_noisy(self.flat, threshold)


def _split_rounds(flat: tuple[float, ...], medians: Sequence[float]) -> tuple[tuple[float, ...], ...] | None:
    """The rounds `flat` was concatenated from, found from each round's recorded median (None if no split fits).

    Documents written before `round_samples_s` kept the rounds' samples one
    after the other in `samples_s` and each round's median in
    `round_medians_s`; the median of a round is recomputed exactly from the
    same floats, so the cut points are where the medians match.
    """

    def cuts(start: int, j: int) -> list[int] | None:
        if j == len(medians):
            return [] if start == len(flat) else None
        if j == len(medians) - 1:
            return [len(flat)] if statistics.median(flat[start:]) == medians[j] else None
        prefix: list[float] = []  # the round's samples so far, kept sorted: each median is then O(1)
        for end in range(start + 1, len(flat) - (len(medians) - j - 1) + 1):
            bisect.insort(prefix, flat[end - 1])
            n = len(prefix)
            median = prefix[n // 2] if n % 2 else (prefix[n // 2 - 1] + prefix[n // 2]) / 2
            if median == medians[j] and (rest := cuts(end, j + 1)) is not None:
                return [end, *rest]
        return None

    if len(medians) < 2 or len(medians) > len(flat):
        return None
    ends = cuts(0, 0)
    if ends is None:
        return None
    starts = [0, *ends[:-1]]
    return tuple(flat[a:b] for a, b in zip(starts, ends))


# -- records --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One case of one run: what was measured, its status, its samples and provenance.

    `key`, `variant`, `flops` and every statistic (`median_s`, `iqr_s`,
    `mean_s`, `gflops`, `peak_fraction`, per-round medians) derive from `case`
    and `samples`; `noisy` is stored as measured (older documents judged it
    against a threshold they did not record). `extra` keeps fields this
    version does not know, so reading and writing a record loses nothing.
    """

    case: Case
    status: str
    error: str | None = None
    samples: Samples | None = None
    number: int | None = None
    compile_s: float | None = None
    timed_s: float | None = None
    wall_s: float | None = None
    peak_gflops: float | None = None
    peak_fraction: float | None = None  # gflops over the machine's peak (else the framework's own probe)
    machine_peak_gflops: float | None = None  # the best GEMM over the run's frameworks (roofline)
    bandwidth_gbps: float | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    noisy: bool | None = None
    noise_threshold: float | None = None
    threads: int | None = None
    timestamp: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RecordError("status", f"must be one of {', '.join(STATUSES)}, got {_show(self.status)}")
        if self.status == "ok" and self.samples is None:
            raise RecordError("samples_s", "an ok record needs its samples")

    # derived fields
    @property
    def key(self) -> str:
        return self.case.key

    @property
    def flops(self) -> int:
        """Useful FLOPs of one call; a record read from disk keeps the count it was written with."""
        written = self.extra.get("flops")
        return written if isinstance(written, int) else self.case.flops

    @property
    def median_s(self) -> float | None:
        return self.samples.median_s if self.samples else None

    @property
    def gflops(self) -> float | None:
        return self.flops / self.samples.median_s / 1e9 if self.samples else None

    def _fraction(self, samples: Samples | None) -> float | None:
        """gflops over the machine's peak where the run filed one, else over the framework's own probe."""
        ceiling = self.machine_peak_gflops or self.peak_gflops
        return self.flops / samples.median_s / 1e9 / ceiling if samples and ceiling else None

    @classmethod
    def measured(
        cls, case: Case, status: str, *, threads: int, samples: Samples | None = None, number: int | None = None,
        compile_s: float | None = None, timed_s: float | None = None, noise_threshold: float | None = None,
        max_abs_error: float | None = None, max_rel_error: float | None = None, peak_gflops: float | None = None,
        error: str | None = None, timestamp: str | None = None,
    ) -> Record:  # fmt: skip
        """A record fresh from the timing engine (`noisy` judged here against `noise_threshold`)."""
        noisy = samples.noisy(noise_threshold if noise_threshold is not None else 0.05) if samples else None
        fraction = case.flops / samples.median_s / 1e9 / peak_gflops if samples and peak_gflops else None
        return cls(
            peak_fraction=fraction,
            case=case, status=status, error=error, samples=samples, number=number, compile_s=compile_s,
            timed_s=timed_s, peak_gflops=peak_gflops, max_abs_error=max_abs_error, max_rel_error=max_rel_error,
            noisy=noisy, noise_threshold=noise_threshold, threads=threads, timestamp=timestamp,
        )  # fmt: skip

    def annotated(self, fields: Mapping[str, Any]) -> Record:
        """This record with provenance fields the model does not own (`extra`: the engine's clock and stalls,
        the load and GPU state around the case, the implementation a native layer ran) set or replaced."""
        own = [k for k in fields if k in _OWN_FIELDS or k in _CASE_FIELDS]
        if own:
            raise ValueError(f"{own[0]!r} is a field of the record itself, not an annotation")
        return replace(self, extra={**self.extra, **fields})

    def merge(self, later: Record) -> Record:
        """This record with a later round of the same case added.

        A later round that did not measure (its worker died, the case failed)
        fails the case: the earlier rounds' samples stay, `failed_round` (in
        `extra`) says which round failed, and its error is appended, numbered
        by round. The GPU state fields the runner files per round are merged:
        first and last reading, throttle reasons of every round.
        """
        if later.key != self.key:
            raise ValueError(f"cannot merge rounds of different cases: {self.key} and {later.key}")
        done = len(self.samples.rounds) if self.samples else 1
        extra = dict(self.extra)
        if "gpu_throttled" in later.extra:
            extra |= _merge_gpu(self.extra, later.extra)
        if later.status != "ok" or later.samples is None or self.samples is None:
            note = f"round {done + 1}: {later.error}"
            return replace(
                self,
                status="failed",
                error=f"{self.error}; {note}" if self.error else note,
                extra=extra | {"failed_round": done + 1},
            )
        samples = self.samples.merge(later.samples)
        threshold = self.noise_threshold if self.noise_threshold is not None else 0.05
        return replace(
            self,
            samples=samples,
            peak_fraction=self._fraction(samples),
            noisy=samples.noisy(threshold),
            timed_s=(self.timed_s or 0.0) + (later.timed_s or 0.0),
            wall_s=(self.wall_s or 0.0) + (later.wall_s or 0.0),
            extra=extra,
        )

    def to_json(self) -> dict[str, Any]:
        """The on-disk form: `RECORD_FIELDS`, then the round fields, then anything kept in `extra`."""
        d = self.case.to_dict()
        s = self.samples
        q = {
            "key": self.key,
            "variant": self.case.spec.label,
            "median_s": s.median_s if s else None,
            "iqr_s": s.iqr_s if s else None,
            "mean_s": s.mean_s if s else None,
            "samples_s": list(s.flat) if s else [],
            "number": self.number,
            "compile_s": self.compile_s,
            "flops": self.flops,
            "gflops": self.gflops,
            "peak_gflops": self.peak_gflops,
            "peak_fraction": self.peak_fraction,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "noisy": self.noisy,
            "status": self.status,
            "error": self.error,
            "threads": self.threads,
            "timestamp": self.timestamp,
        }
        out = {name: q[name] if name in q else d[name] for name in RECORD_FIELDS}
        out |= {k: v for k, v in d.items() if k not in out}  # case fields added after RECORD_FIELDS was fixed
        out |= {"timed_s": self.timed_s, "wall_s": self.wall_s, "noise_threshold": self.noise_threshold}
        if self.machine_peak_gflops is not None or self.bandwidth_gbps is not None:
            out |= {"machine_peak_gflops": self.machine_peak_gflops, "bandwidth_gbps": self.bandwidth_gbps}
        if s is not None:
            out |= {
                "rounds": len(s.rounds),
                "round_medians_s": list(s.round_medians_s),
                "round_samples_s": [list(r) for r in s.rounds],
            }
        return out | {k: v for k, v in self.extra.items() if k not in out}

    @classmethod
    def from_json(cls, d: object) -> Record:
        """A record read from disk, every field checked; RecordError naming the first bad field.

        Accepted besides today's form: records without `timed_s`, `wall_s`,
        `noise_threshold` (written before those existed) and without
        `round_samples_s` (their rounds are recovered from `round_medians_s`
        where the medians pin the cut points down, else all samples are one
        round). Stored statistics must agree with the samples, and every time
        must be finite and positive.
        """
        if not isinstance(d, Mapping):
            raise RecordError("record", f"must be an object, got {_show(d)}")
        for name in ("key", *_CASE_STRINGS):
            _text(d, name, optional=False)
        for name in _CASE_OPTIONS:
            _text(d, name)
        for name in _CASE_SIZES:
            _integer(d, name, minimum=1, optional=False)
        try:
            case = Case.from_dict({k: v for k, v in d.items() if v is not None or k not in _CASE_OPTIONS})
        except (UsageError, TypeError, ValueError) as exc:
            raise RecordError("case", str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        if d["key"] != case.key:
            raise RecordError("key", f"{_show(d['key'])} does not match the record's case {case.key!r}")
        if d.get("variant") is not None and d["variant"] != case.spec.label:
            raise RecordError("variant", f"{_show(d['variant'])} does not match the cell options")
        status = _text(d, "status", optional=False)
        if status not in STATUSES:
            raise RecordError("status", f"must be one of {', '.join(STATUSES)}, got {_show(status)}")
        samples = _read_samples(d)
        if status == "ok" and samples is None:
            raise RecordError("samples_s", "an ok record needs at least one sample")
        number = _integer(d, "number", minimum=1)
        flops = _integer(d, "flops", minimum=0)
        peak = _real(d, "peak_gflops", positive=True)
        stats = {name: _real(d, name, positive=name != "iqr_s") for name in ("median_s", "mean_s", "iqr_s")}
        stats |= {name: _real(d, name, positive=True) for name in ("gflops", "peak_fraction")}
        if samples is None:
            for name, v in stats.items():
                if v is not None:
                    raise RecordError(name, "set, but the record has no samples")
        else:
            for name in ("median_s", "iqr_s", "mean_s"):  # every writer stores them with the samples
                if stats[name] is None:
                    raise RecordError(name, "missing, but the record has samples")
            _close(stats["median_s"], samples.median_s, "median_s", samples.median_s)
            _close(stats["mean_s"], samples.mean_s, "mean_s", samples.median_s)
            _close(stats["iqr_s"], samples.iqr_s, "iqr_s", samples.median_s)
            if flops is not None and stats["gflops"] is not None:
                gflops = flops / samples.median_s / 1e9
                _close(stats["gflops"], gflops, "gflops", gflops)
                ceiling = _real(d, "machine_peak_gflops", positive=True) or peak
                if ceiling is not None and stats["peak_fraction"] is not None:
                    _close(stats["peak_fraction"], gflops / ceiling, "peak_fraction", gflops / ceiling)
        extra = {k: v for k, v in d.items() if k not in _OWN_FIELDS and k not in _CASE_FIELDS}
        if flops is not None and flops != case.flops:
            extra["flops"] = flops  # counted by an older FLOP model: keep what was written
        return cls(
            case=case,
            status=status,
            error=_text(d, "error"),
            samples=samples,
            number=number,
            compile_s=_real(d, "compile_s", nonnegative=True),
            timed_s=_real(d, "timed_s", nonnegative=True),
            wall_s=_real(d, "wall_s", nonnegative=True),
            peak_gflops=peak,
            peak_fraction=stats["peak_fraction"],
            machine_peak_gflops=_real(d, "machine_peak_gflops", positive=True),
            bandwidth_gbps=_real(d, "bandwidth_gbps", positive=True),
            max_abs_error=_real(d, "max_abs_error", nonnegative=True),
            max_rel_error=_real(d, "max_rel_error", nonnegative=True),
            noisy=_flag(d, "noisy"),
            noise_threshold=_real(d, "noise_threshold", positive=True),
            threads=_integer(d, "threads", minimum=1),
            timestamp=_timestamp(d, "timestamp"),
            extra=extra,
        )


def _check_times(values: Sequence[object], name: str) -> None:
    """Every value a finite, positive number (the fast path checks types first, then all values at once)."""
    if set(map(type, values)) <= {float, int}:  # bool is a subclass of int, but not `int` itself
        a = np.asarray(values, dtype=float)
        if a.size == 0 or (np.isfinite(a).all() and (a > 0).all()):
            return
    for s in values:  # slow path: name the first offender
        _number(s, name, positive=True)


def _merge_gpu(first: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """GPU state over rounds: the first round's first reading, the last round's last, throttled if any round was."""
    out: dict[str, Any] = {}
    for name in ("gpu_temp_c", "gpu_sm_mhz"):
        a, b = first.get(name, later.get(name)), later.get(name)
        if isinstance(a, list) and isinstance(b, list) and a and b:
            out[name] = [a[0], b[-1]]
    throttle = [*(first.get("gpu_throttle") or []), *(later.get("gpu_throttle") or [])]
    out["gpu_throttle"] = sorted({str(t) for t in throttle})
    out["gpu_throttled"] = bool(first.get("gpu_throttled")) or bool(later.get("gpu_throttled"))
    return out


def _float_list(v: object, name: str) -> tuple[float, ...]:
    if not isinstance(v, list):
        raise RecordError(name, f"must be a list of numbers, got {_show(v)}")
    _check_times(v, name)
    return tuple(map(float, v))


def _read_samples(d: Mapping[str, Any]) -> Samples | None:
    raw = d.get("samples_s")
    flat = _float_list(raw, "samples_s") if raw is not None else ()
    nested = d.get("round_samples_s")
    if nested is not None:
        if not isinstance(nested, list):
            raise RecordError("round_samples_s", f"must be a list of lists of numbers, got {_show(nested)}")
        rounds = tuple(_float_list(r, "round_samples_s") for r in nested)
        if tuple(itertools.chain.from_iterable(rounds)) != flat:
            raise RecordError("round_samples_s", "its rounds, one after the other, must be samples_s")
        samples = Samples._checked(rounds) if flat else None
    elif not flat:
        samples = None
    else:
        medians = d.get("round_medians_s")
        split = None
        if isinstance(medians, list) and all(isinstance(m, (int, float)) and not isinstance(m, bool) for m in medians):
            split = _split_rounds(flat, [float(m) for m in medians])
        samples = Samples._checked(split or (flat,))
    if samples is not None:
        medians = d.get("round_medians_s")
        if nested is not None and medians is not None:
            if not isinstance(medians, list) or len(medians) != len(samples.rounds):
                raise RecordError("round_medians_s", "must hold one median per round")
            for stored, derived in zip(medians, samples.round_medians_s):
                _close(_number(stored, "round_medians_s"), derived, "round_medians_s", derived)
        count = _integer(d, "rounds", minimum=1)
        if count is not None and nested is not None and count != len(samples.rounds):
            raise RecordError("rounds", f"{count}, but round_samples_s holds {len(samples.rounds)} rounds")
    return samples


# -- peaks and documents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """The peak GEMM rate measured for one (framework, device, dtype) of a run."""

    framework: str
    device: str
    dtype: str
    n: int
    median_s: float
    gflops: float
    # what the probe records beside the GEMM (fp32 mode, the size ladder, STREAM bandwidth), kept as written
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "device": self.device,
            "dtype": self.dtype,
            "n": self.n,
            "median_s": self.median_s,
            "gflops": self.gflops,
        } | dict(self.extra)

    @classmethod
    def from_json(cls, d: object) -> Peak:
        if not isinstance(d, Mapping):
            raise RecordError("peak", f"must be an object, got {_show(d)}")
        framework, device, dtype = (_text(d, k, optional=False) for k in ("framework", "device", "dtype"))
        assert framework is not None and device is not None and dtype is not None
        n = _integer(d, "n", minimum=1, optional=False)
        median, gflops = _real(d, "median_s", positive=True), _real(d, "gflops", positive=True)
        if n is None or median is None or gflops is None:
            raise RecordError("median_s" if median is None else "gflops", "must be a positive number")
        known = {"framework", "device", "dtype", "n", "median_s", "gflops"}
        return cls(framework, device, dtype, n, median, gflops, {k: v for k, v in d.items() if k not in known})


@dataclass(frozen=True)
class PeakFailure:
    """A peak probe that failed twice: its group's `peak_fraction` stays null, and the run says so."""

    framework: str
    device: str
    dtype: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"framework": self.framework, "device": self.device, "dtype": self.dtype, "error": self.error}


@dataclass(frozen=True)
class ABHeader:
    """The `ab` header of one side's document of an `rnnbench ab` run: which side, how it was run, and the
    run id of the other side's document (`ab_pair` finds a pair by it)."""

    side: str  # base or new
    spec: str  # what the user typed: an interpreter or a git revision
    revision: str | None
    other_run_id: str
    rounds: int
    extra_rounds: int
    seed: int
    interleave: str  # turn or round
    idle_env: Mapping[str, str] = field(default_factory=dict)  # what the side's idle threads were told
    selftest: Mapping[str, str] = field(default_factory=dict)  # self-test switches the side ran with

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side, "spec": self.spec, "revision": self.revision, "other_run_id": self.other_run_id,
            "rounds": self.rounds, "extra_rounds": self.extra_rounds, "seed": self.seed,
            "interleave": self.interleave, "idle_env": dict(self.idle_env), "selftest": dict(self.selftest),
        }  # fmt: skip


_MACHINE_TEXT = (
    "hostname", "cpu_model", "gpu_name", "gpu_driver", "cuda", "cudnn", "blas", "python", "os", "git_commit",
)  # fmt: skip


def check_machine(machine: object) -> dict[str, Any]:
    """The machine fingerprint of a document, its fields type-checked (unknown fields are kept)."""
    if not isinstance(machine, Mapping):
        raise DocumentError("machine", f"must be an object, got {_show(machine)}")
    try:
        name = _text(machine, "machine", optional=False)
        if not name:
            raise RecordError("machine", "must not be empty")
        for k in _MACHINE_TEXT:
            _text(machine, k)
        _integer(machine, "threads", minimum=1)
        _integer(machine, "cpu_cores", minimum=1)
        _flag(machine, "git_dirty")
        frameworks = machine.get("frameworks")
        if frameworks is not None and (
            not isinstance(frameworks, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in frameworks.items())
        ):
            raise RecordError("frameworks", "must map framework names to version text")
    except RecordError as exc:
        raise DocumentError(f"machine.{exc.field}", str(exc).split(": ", 1)[1]) from None
    return dict(machine)


_HEADER_FIELDS = frozenset(
    {
        "api_version",
        "kind",
        "run_id",
        "created",
        "finished",
        "command",
        "preset",
        "shard",
        "grid",
        "machine",
        "peaks",
        "records",
    }
)


@dataclass(frozen=True)
class RunDocument:
    """One run: its header, the machine fingerprint, the peaks and the records that passed validation."""

    run_id: str
    created: str
    machine: Mapping[str, Any]
    records: tuple[Record, ...] = ()
    peaks: tuple[Peak, ...] = ()
    finished: str | None = None
    command: tuple[str, ...] = ()
    preset: str | None = None
    shard: str | None = None
    # the sweep the run measured (`sweep.grid.Grid.to_json`), kept as written: a grid field a later
    # rnnbench adds must not make the document unreadable here; `merge` reads it with `Grid.from_json`
    grid: Mapping[str, Any] | None = None
    api_version: int = API_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)  # header fields this version does not know, kept

    @classmethod
    def from_json(cls, doc: object) -> tuple[RunDocument, list[Problem]]:
        """The document and the records (and peaks) left out of it; DocumentError if its header is unreadable."""
        if not isinstance(doc, Mapping) or doc.get("kind") != KIND:
            raise DocumentError("kind", f"not an {KIND} document")
        version = doc.get("api_version")
        if isinstance(version, bool) or version not in READABLE_API_VERSIONS:
            raise DocumentError(
                "api_version", f"{_show(version)}; this rnnbench reads {', '.join(map(str, READABLE_API_VERSIONS))}"
            )
        try:
            run_id = _text(doc, "run_id", optional=False)
            created = _timestamp(doc, "created", optional=False)
            finished = _timestamp(doc, "finished")
            preset, shard = _text(doc, "preset"), _text(doc, "shard")
            command = doc.get("command") or []
            if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
                raise RecordError("command", "must be a list of text")
            grid = doc.get("grid")
            if grid is not None and not isinstance(grid, Mapping):
                raise RecordError("grid", f"must be an object, got {_show(grid)}")
        except RecordError as exc:
            raise DocumentError(exc.field, str(exc).split(": ", 1)[1]) from None
        assert run_id is not None and created is not None
        machine = check_machine(doc.get("machine"))
        raw_records, raw_peaks = doc.get("records"), doc.get("peaks", [])
        if not isinstance(raw_records, list):
            raise DocumentError("records", f"must be a list, got {_show(raw_records)}")
        if not isinstance(raw_peaks, list):
            raise DocumentError("peaks", f"must be a list, got {_show(raw_peaks)}")
        problems: list[Problem] = []
        records, peaks = [], []
        for i, raw in enumerate(raw_records):
            try:
                records.append(Record.from_json(raw))
            except RecordError as exc:
                problems.append(Problem(i, exc.field, str(exc).split(": ", 1)[1]))
        for i, raw in enumerate(raw_peaks):
            try:
                peaks.append(Peak.from_json(raw))
            except RecordError as exc:
                problems.append(Problem(i, exc.field, str(exc).split(": ", 1)[1], what="peak"))
        return cls(
            run_id=run_id, created=created, machine=machine, records=tuple(records), peaks=tuple(peaks),
            finished=finished, command=tuple(command), preset=preset, shard=shard, grid=grid, api_version=version,
            extra={k: v for k, v in doc.items() if k not in _HEADER_FIELDS},
        ), problems  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The on-disk form (written as today's `API_VERSION`)."""
        return {
            "api_version": API_VERSION,
            "kind": KIND,
            "run_id": self.run_id,
            "created": self.created,
            "finished": self.finished,
            "command": list(self.command),
            "preset": self.preset,
            "shard": self.shard,
            # written only when known, so a document without one reads (and is written) as before
            **({"grid": dict(self.grid)} if self.grid is not None else {}),
            "machine": dict(self.machine),
            "peaks": [p.to_json() for p in self.peaks],
            "records": [r.to_json() for r in self.records],
        } | {k: v for k, v in self.extra.items() if k not in _HEADER_FIELDS}
