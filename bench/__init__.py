"""Benchmarks of gan-study: `python -m bench.<name>`; see bench/README.md. Results go to bench/RESULTS.md."""
