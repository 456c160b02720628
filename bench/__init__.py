"""Benchmarks of jetwatch against its peers; run with ``python -m bench.run --quick|--full``."""
