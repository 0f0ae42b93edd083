"""Sweeps: a scenario over a grid of settings and many seeds, with intervals."""
