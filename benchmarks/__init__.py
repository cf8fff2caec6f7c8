"""Measuring scripts: what MGRAL costs and what its reward is worth (see README.md here).

Run each from the repository root, as `python benchmarks/<script>.py ...` or
`python -m benchmarks.<script> ...`. Code two scripts share lives in `_project.py` (the Kedro
project, profiles and cycles) and `_measure.py` (time, memory and the conditions of a run).
"""
