"""Example scripts (not part of the package; run them as
`python examples/<name>.py`). A package so that the shared helpers are
`examples._common` and never clash with the benchmarks' in one process."""
