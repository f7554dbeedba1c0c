"""A prompt's ``images`` globs pick the images it targets with ``fnmatch.fnmatchcase`` semantics, asked once per
image of the catalog (planning/prompt_spec.py compiles them to one pattern), and its clip keys read image|prompt."""

import fnmatch
import itertools

import pytest

from seedance_pipeline.lineage.partitions import clip_key, clip_partition
from seedance_pipeline.planning.prompt_spec import parse_prompt

NAMES = ["img1", "img10", "IMG1", "abc", "a.c", "x9z", "bcd", "a", "tower-2", "t[1]"]
PATTERNS = ["*", "img*", "img?", "a?c", "a.c", "x[0-9]*", "[!a]*", "tower-*", "t[[]1]", "none-*"]


@pytest.mark.parametrize("globs", [list(c) for n in (1, 2) for c in itertools.combinations(PATTERNS, n)])
def test_targets_is_fnmatchcase_over_any_glob(globs):
    spec = parse_prompt("prompts/p.yaml", f"text: hello\nimages: {globs!r}\n")
    assert [n for n in NAMES if spec.targets(n)] == [n for n in NAMES if any(fnmatch.fnmatchcase(n, g) for g in globs)]


def test_clip_partition_is_the_clip_key_string():
    for image, prompt in [("tower", "dusk-dolly"), ("img000001", "shot4"), ("a.b", "c_d")]:
        assert clip_partition(image, prompt) == str(clip_key(image, prompt))
