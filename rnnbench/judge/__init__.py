"""The judge: the one place verdicts come from (`compare`, `ab`, `regressions`, the landing page, `run`, the report).

`bootstrap` holds the statistics (pure functions over arrays), `rules` the
verdict vocabulary, its thresholds, the band rule, winners and the busy-machine
rule, `cases` the loop that judges every case of two sides into a
`Comparison`, and `published` the words a night publishes (`verdicts.json`)
and the one history rule with its minimum detectable effect. The package sits
between `measure` (whose stall rule it applies) and `sweep` (whose `run` and
`ab` use it), and imports nothing beyond numpy and the standard library at the
top.
"""
