"""rnnbench's asv suite: one module per topic, one class per sweep (see docs/asv.md).

The modules are thin on purpose: grids, case construction, verification and
the in-process rate timers live in `rnnbench.asvsuite`.
"""
