"""Benchmark scripts behind the package's design choices (not part of the
package; see `benchmarks/README.md`). A package so that its modules are
`benchmarks.<name>` and never clash with the examples' in one process."""
