"""The benchmarks: one script per claim, run from the repository root as `python -m benchmarks.NAME`
(or as a file, benchmarks/NAME.py); each prints one JSON object on its last line. Helpers they share
are in `support/`, plots in `figures/`, raw last lines in `results/`; figures in RESULTS.md."""
