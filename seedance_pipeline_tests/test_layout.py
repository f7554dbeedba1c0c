"""The layout's one rule that no linter checks: a module has one job, and no module outside the simulator grows
past 300 lines (docs/architecture.md). The simulator keeps deliberate copies of provider facts and is exempt."""

from pathlib import Path

import seedance_pipeline

MAX_LINES = 300
ROOT = Path(seedance_pipeline.__file__).parent


def test_no_module_outside_the_simulator_exceeds_300_lines():
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in ROOT.rglob("*.py")
        if "simulator" not in path.relative_to(ROOT).parts
    }
    assert len(sizes) > 50  # the walk found the package
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
