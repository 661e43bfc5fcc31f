"""mediabot benchmarks: pytest-benchmark suites (bench_*.py) and their runner.

Run ``python -m benchmarks [--quick] [--json PATH] [-k EXPR]``.
"""
