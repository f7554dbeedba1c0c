"""``python -m seedance_pipeline.cli``."""

from seedance_pipeline.cli import main

main()
