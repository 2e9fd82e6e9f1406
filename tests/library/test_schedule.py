"""Coarse-to-fine schedules (painterly.schedule.plan_levels)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from painterly.config import Config
from painterly.schedule import Level, plan_levels


def test_single_scale():
    assert plan_levels(Config(size=512, iterations=300, multiscale=False)) == (Level(512, 300),)


def test_multiscale_512_is_128_256_512_split_two_one_two():
    levels = plan_levels(Config(size=512, iterations=500, min_size=128))
    assert [lv.size for lv in levels] == [128, 256, 512]
    assert [lv.iterations for lv in levels] == [200, 100, 200]


def test_multiscale_split_sums_to_iterations_with_remainder_on_the_last_level():
    levels = plan_levels(Config(size=512, iterations=47, min_size=128))
    counts = [lv.iterations for lv in levels]
    assert sum(counts) == 47
    assert counts == [18, 9, 20]


def test_levels_between_get_one_share_the_ends_two():
    levels = plan_levels(Config(size=2048, iterations=600, min_size=128))
    assert [lv.size for lv in levels] == [128, 256, 512, 1024, 2048]
    assert [lv.iterations for lv in levels] == [171, 85, 85, 85, 174]


def test_two_levels_split_equally():
    levels = plan_levels(Config(size=256, iterations=101, min_size=128))
    assert [lv.iterations for lv in levels] == [50, 51]


def test_default_config_plans_three_levels():
    levels = plan_levels(Config())
    assert [lv.size for lv in levels] == [128, 256, 512]
    assert sum(lv.iterations for lv in levels) == Config().iterations


def test_sizes_halve_down_to_no_less_than_min_size():
    assert [lv.size for lv in plan_levels(Config(size=1000, min_size=128))] == [250, 500, 1000]
    assert [lv.size for lv in plan_levels(Config(size=1000, min_size=125))] == [125, 250, 500, 1000]
    assert [lv.size for lv in plan_levels(Config(size=300, min_size=100))] == [150, 300]


@pytest.mark.parametrize("size, min_size", [(128, 128), (200, 128), (64, 128), (16, 16), (31, 16)])
def test_small_size_is_a_single_level(size, min_size):
    assert plan_levels(Config(size=size, min_size=min_size, iterations=50)) == (Level(size, 50),)


def test_level_iterations_explicit():
    levels = plan_levels(Config(size=512, min_size=128, level_iterations=(10, 20, 30)))
    assert levels == (Level(128, 10), Level(256, 20), Level(512, 30))


def test_level_iterations_sets_the_number_of_levels_geometrically():
    levels = plan_levels(Config(size=512, min_size=128, level_iterations=(5, 5)))
    assert levels == (Level(128, 5), Level(512, 5))
    levels = plan_levels(Config(size=1000, min_size=125, level_iterations="1,1,1,1"))
    assert [lv.size for lv in levels] == [125, 250, 500, 1000]


def test_level_iterations_ignores_iterations_and_skips_empty_levels():
    cfg = Config(size=512, min_size=128, iterations=999, level_iterations=(0, 7, 3))
    assert plan_levels(cfg) == (Level(256, 7), Level(512, 3))


def test_level_iterations_without_multiscale_is_one_level_with_their_sum():
    cfg = Config(size=256, multiscale=False, level_iterations=(4, 6))
    assert plan_levels(cfg) == (Level(256, 10),)
    assert plan_levels(Config(size=256, level_iterations=(9,))) == (Level(256, 9),)


def test_level_iterations_with_min_size_above_size():
    levels = plan_levels(Config(size=100, min_size=128, level_iterations=(2, 3)))
    assert levels == (Level(100, 2), Level(100, 3))


def test_few_iterations_still_end_at_full_size():
    levels = plan_levels(Config(size=512, min_size=128, iterations=2))
    assert levels[-1].size == 512
    assert sum(lv.iterations for lv in levels) == 2
    assert all(lv.iterations > 0 for lv in levels)
    assert plan_levels(Config(size=512, min_size=128, iterations=1)) == (Level(512, 1),)


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(16, 4096),
    min_size=st.integers(16, 1024),
    iterations=st.integers(1, 5000),
    multiscale=st.booleans(),
)
def test_plan_invariants(size, min_size, iterations, multiscale):
    levels = plan_levels(Config(size=size, min_size=min_size, iterations=iterations, multiscale=multiscale))
    assert sum(lv.iterations for lv in levels) == iterations
    assert levels[-1].size == size
    assert all(lv.iterations > 0 for lv in levels)
    sizes = [lv.size for lv in levels]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert all(s >= min(min_size, size) for s in sizes)
