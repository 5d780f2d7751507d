"""Sweeps: grids of cases, the runner and its worker processes, and the versioned results store."""
