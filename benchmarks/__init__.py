"""Performance benchmarks (issue #6): ``python -m benchmarks [--quick] [--only N]``. See README.md here."""
