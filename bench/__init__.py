"""Benchmarks: tool-bridge against the SDK's own session tool runner, side by side, in one run.

`python bench/run.py --quick` (or the full `python bench/run.py`, or `--only w4`). See `run.py` for how it measures
and why, and the README's "Benchmarks" section for the latest table.
"""
