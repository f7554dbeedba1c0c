"""Performance benchmarks: ``python -m benchmarks [--quick] [--only N]``. See README.md here."""
