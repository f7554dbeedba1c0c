"""planning/cover.py: the ranges a run covers hold the wanted partitions and, where few ranges do, nothing else."""

import itertools
import random

import pytest

from seedance_pipeline.planning.cover import MAX_RUNS, rectangles, span

IMAGES = [f"img{i:02d}" for i in range(20)]
PROMPTS = ["a", "b", "c", "d", "e"]


def inside(rect, images=IMAGES, prompts=PROMPTS):
    i0, i1 = images.index(rect.images[0]), images.index(rect.images[1])
    p0, p1 = prompts.index(rect.prompts[0]), prompts.index(rect.prompts[1])
    return {(images[i], prompts[p]) for i in range(i0, i1 + 1) for p in range(p0, p1 + 1)}


def test_span_is_the_shortest_range_holding_the_chosen_keys():
    assert span(IMAGES, {"img17", "img18", "img19"}) == ("img17", "img19")  # new files: one range at the end
    assert span(IMAGES, {"img03"}) == ("img03", "img03")
    with pytest.raises(ValueError):
        span(IMAGES, set())


def test_new_images_for_every_prompt_are_one_exact_rectangle():
    wanted = {(i, p) for i in IMAGES[17:] for p in PROMPTS}
    [rect] = rectangles(wanted, IMAGES, PROMPTS, slack=0)
    assert (rect.images, rect.prompts, rect.size) == (("img17", "img19"), ("a", "e"), 15)
    assert inside(rect) == wanted == set(rect.pairs)


def test_an_edited_prompt_is_its_column_and_scattered_clips_stay_exact_up_to_max_runs():
    column = {(i, "c") for i in IMAGES}
    [rect] = rectangles(column, IMAGES, PROMPTS, slack=0)
    assert inside(rect) == column and rect.size == 20
    scattered = {("img02", "a"), ("img02", "b"), ("img11", "d"), ("img19", "e")}
    rects = rectangles(scattered, IMAGES, PROMPTS, slack=0)
    assert len(rects) == 3 and sum(r.size for r in rects) == 4
    assert set().union(*(inside(r) for r in rects)) == scattered == {p for r in rects for p in r.pairs}


def test_past_max_runs_one_rectangle_around_them_all():
    wanted = {(IMAGES[i], "a") for i in range(0, 20, 2)}  # ten runs of one image each
    [rect] = rectangles(wanted, IMAGES, PROMPTS, slack=0)
    assert (rect.images, rect.prompts, rect.size) == (("img00", "img18"), ("a", "a"), 19)
    assert set(rect.pairs) == wanted


def test_a_prompt_between_two_that_want_the_same_images_is_not_swept_in():
    wanted = {(i, p) for i in IMAGES[:3] for p in ("a", "c")}  # b wants nothing
    rects = rectangles(wanted, IMAGES, PROMPTS, slack=0)
    assert len(rects) == 2 and set().union(*(inside(r) for r in rects)) == wanted


def test_random_sets_are_always_held_and_exact_when_few_runs_do():
    rng = random.Random(7)
    all_pairs = list(itertools.product(IMAGES, PROMPTS))
    for _ in range(300):
        wanted = set(rng.sample(all_pairs, rng.randint(1, 12)))
        rects = rectangles(wanted, IMAGES, PROMPTS, slack=0)
        covered = set().union(*(inside(r) for r in rects))
        assert wanted <= covered and {p for r in rects for p in r.pairs} == wanted
        assert len(rects) <= MAX_RUNS
        if len(rects) > 1 or covered == wanted:
            assert covered == wanted and sum(r.size for r in rects) == len(wanted)


def test_one_run_around_them_when_it_covers_at_most_slack_more():
    scattered = {("img02", "a"), ("img04", "a"), ("img03", "b")}  # 3 exact rectangles, or one of 6
    [around] = rectangles(scattered, IMAGES, PROMPTS, slack=3)
    assert (around.images, around.prompts, around.size) == (("img02", "img04"), ("a", "b"), 6)
    assert set(around.pairs) == scattered
    assert len(rectangles(scattered, IMAGES, PROMPTS, slack=2)) == 3
