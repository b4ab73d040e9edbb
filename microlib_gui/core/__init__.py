"""The engine: plain functions and small classes on numpy/torch arrays.

Nothing below this package imports Qt, so it runs headless (CLI, SLURM jobs).
"""
