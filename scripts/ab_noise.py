"""Where the noise of an `rnnbench ab` pair lives: samples, rounds, and how much the cases share it.

For the two documents of one `ab` run (BASE and NEW, plain or gzipped), per framework:

- `within IQR`: IQR / median of one side's samples within a round (median over cases and rounds);
- `round sd`: the sd over rounds of log(median NEW / median BASE) of a round, median over cases: the
  noise the paired verdict works with (its 99% interval is about +-1.2 of it with 5 rounds);
- `iid sd`: what `round sd` would be if a round's samples were independent draws (from `within IQR`
  and the sample counts): when `round sd` is well above it, the noise comes in blocks (turns, rounds),
  and more samples per turn do not help;
- `prior df`: the degrees of freedom of an empirical-Bayes (limma-style) prior fitted to the cases'
  per-round variances: large when the cases share one noise level (so pooling their variances would
  narrow every interval), small (2-3) when each case's noise is its own;
- the verdicts `rnnbench.sweep.ab.judge` gives the pair, and (`moderated`) those a moderated t
  interval would give: each case's round variance shrunk toward that prior, a t quantile with the
  pooled degrees of freedom, 99% as `judge`, busy cases left `too noisy` as `judge` leaves them.

Usage (from the repository root):
    PYTHONPATH=. python scripts/ab_noise.py BASE.json[.gz] NEW.json[.gz]
"""

import argparse
import gzip
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from scipy import optimize, special, stats

from rnnbench.judge.cases import judge_records
from rnnbench.judge.rules import read_band


def _fail(message: str) -> NoReturn:
    print(f"ab_noise: {message}", file=sys.stderr)
    raise SystemExit(2)


def _load(path: str) -> dict[str, Any]:
    """One `ab` side's document; bad input ends the script with a one-line error and exit 2."""
    try:
        raw = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {path}: {exc}")
    if not isinstance(doc, dict) or not isinstance(doc.get("ab"), dict) or not isinstance(doc.get("records"), list):
        _fail(f"{path} is not a document of an `rnnbench ab` run")
    return doc


def prior(variances: list[float], df: list[int]) -> tuple[float, float]:
    """(d0, s0^2) of the scaled inverse chi-square prior fitted by moments of log variance (Smyth 2004)."""
    s2, d = np.asarray(variances, dtype=float), np.asarray(df, dtype=float)
    ok = (s2 > 0) & (d > 0)
    s2, d = s2[ok], d[ok]
    if len(s2) < 3:
        return math.nan, math.nan
    e = np.log(s2) - special.digamma(d / 2) + np.log(d / 2)
    excess = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2)))
    d0 = math.inf if excess <= 0 else 2 * float(optimize.brentq(lambda x: special.polygamma(1, x) - excess, 1e-8, 1e8))
    shift = 0.0 if math.isinf(d0) else float(special.digamma(d0 / 2) - math.log(d0 / 2))
    return d0, math.exp(float(np.mean(e)) + shift)


def moderated_verdict(logs: list[float], d0: float, s02: float, threshold: float = 0.05) -> str:
    """The verdict of a 99% moderated t interval of the mean round log ratio (limma's, Smyth 2004)."""
    k, s2 = len(logs), float(np.var(logs, ddof=1))
    post, df = (s02, 1e9) if math.isinf(d0) else ((d0 * s02 + (k - 1) * s2) / (d0 + k - 1), d0 + k - 1)
    h = float(stats.t.ppf(0.995, df)) * math.sqrt(post / k)
    lo, hi = math.exp(float(np.mean(logs)) - h), math.exp(float(np.mean(logs)) + h)
    return read_band(lo, hi, threshold, "lower", True)  # read against the band as `compare` reads it


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base")
    p.add_argument("new")
    args = p.parse_args(argv)
    base, new = _load(args.base), _load(args.new)
    if base.get("ab", {}).get("side") == "new":
        base, new = new, base
    by_new = {r["key"]: r for r in new["records"] if r["status"] == "ok"}
    judged = judge_records(base["records"], new["records"], 0.05).cases
    verdicts = {c.key: c.verdict for c in judged}
    busy = {c.key for c in judged if c.note.startswith("busy machine")}
    logs_of: dict[str, list[tuple[str, list[float]]]] = defaultdict(list)
    stats: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for rb in base["records"]:
        rn = by_new.get(rb["key"])
        if rb["status"] != "ok" or rn is None or rb["key"] not in verdicts:
            continue
        s = stats[rb["framework"]]
        counts[rb["framework"]][verdicts[rb["key"]]] += 1
        pairs = [(x, y) for x, y in zip(rb["round_samples_s"], rn["round_samples_s"]) if len(x) > 3 and len(y) > 3]
        if len(pairs) < 2:
            continue
        logs = [math.log(float(np.median(y)) / float(np.median(x))) for x, y in pairs]
        iqr = [float(np.subtract(*np.percentile(v, [75, 25])) / np.median(v)) for pair in pairs for v in pair]
        # the median of n iid draws has sd ~1.2533 sigma / sqrt(n); sigma ~ IQR / 1.349 for a normal
        sigma = float(np.median(iqr)) / 1.349
        iid = [1.2533 * sigma * math.sqrt(1 / len(x) + 1 / len(y)) for x, y in pairs]
        s["within"].append(float(np.median(iqr)))
        s["round"].append(float(np.std(logs, ddof=1)))
        s["iid"].append(float(np.median(iid)))
        s["df"].append(len(logs) - 1)
        logs_of[rb["framework"]].append((rb["key"], logs))
    print(f"{'framework':<12}{'cases':>6}{'within IQR':>12}{'round sd':>10}{'iid sd':>8}{'prior df':>10}  verdicts")
    for fw in sorted(stats):
        s = stats[fw]
        d0, s02 = prior([v**2 for v in s["round"]], [int(v) for v in s["df"]])
        moderated = Counter(
            "too noisy" if key in busy else moderated_verdict(logs, d0, s02) for key, logs in logs_of[fw]
        )
        print(
            f"{fw:<12}{sum(counts[fw].values()):>6}{np.median(s['within']):>12.1%}{np.median(s['round']):>10.1%}"
            f"{np.median(s['iid']):>8.1%}{d0:>10.1f}  {dict(counts[fw])}  moderated {dict(moderated)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
