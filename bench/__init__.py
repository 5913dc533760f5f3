"""Botyard's benchmark suite: ``python -m bench.run --help`` (see docs/benchmarks.md)."""
