"""What `rnnbench report` writes: the interactive dashboard (`dashboard`, Plotly, a static site that
loads its data per case series) and the static report (`build` and `charts`: matplotlib PNGs, one
offline page), plus the pipeline's landing page (`landing`).

Needs the `report` extra (pandas, matplotlib, scipy, pyarrow, plotly).
"""
