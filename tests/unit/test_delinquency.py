"""Delinquency stories: given days past due and flags, then bucket, five-category and stage."""

from __future__ import annotations

from datetime import date

import pytest

from domain.delinquency import (
    Classification,
    DelinquencyPolicy,
    FiveCategory,
    classify,
    days_past_due,
)


def test_days_past_due_counts_from_the_oldest_unpaid_due_date() -> None:
    assert days_past_due(date(2024, 3, 1), date(2024, 2, 1)) == 29
    # Nothing unpaid, or not yet due: not past due.
    assert days_past_due(date(2024, 3, 1), None) == 0
    assert days_past_due(date(2024, 3, 1), date(2024, 3, 1)) == 0
    assert days_past_due(date(2024, 3, 1), date(2024, 3, 5)) == 0


@pytest.mark.parametrize(
    ("dpd", "bucket"),
    [
        (0, "M0"),
        (1, "M1"),
        (30, "M1"),
        (31, "M2"),
        (60, "M2"),
        (61, "M3"),
        (90, "M3"),
        (91, "M4"),
        (120, "M4"),
        (121, "M5"),
        (150, "M5"),
        (151, "M6"),
        (180, "M6"),
        (181, "M7+"),
        (10_000, "M7+"),
    ],
)
def test_bucket_edges(dpd: int, bucket: str) -> None:
    assert classify(dpd).bucket == bucket


@pytest.mark.parametrize(
    ("dpd", "category"),
    [
        (0, FiveCategory.NORMAL),
        (1, FiveCategory.SPECIAL_MENTION),
        (90, FiveCategory.SPECIAL_MENTION),
        (91, FiveCategory.SUBSTANDARD),
        (270, FiveCategory.SUBSTANDARD),
        (271, FiveCategory.DOUBTFUL),
        (360, FiveCategory.DOUBTFUL),
        (361, FiveCategory.LOSS),
    ],
)
def test_five_category_edges(dpd: int, category: FiveCategory) -> None:
    assert classify(dpd).category is category


@pytest.mark.parametrize(("dpd", "stage"), [(0, 1), (30, 1), (31, 2), (90, 2), (91, 3)])
def test_ifrs9_stage_edges(dpd: int, stage: int) -> None:
    assert classify(dpd).stage == stage


def test_restructured_in_observation_is_at_least_special_mention_and_stage_2() -> None:
    # Given a current loan restructured within its observation period,
    result = classify(0, restructured_in_observation=True)
    # then it is no longer normal, yet still ages as M0.
    assert result == Classification(0, "M0", FiveCategory.SPECIAL_MENTION, 2)
    # Restructuring never improves a worse DPD-based view.
    assert classify(100, restructured_in_observation=True).category is FiveCategory.SUBSTANDARD
    assert classify(100, restructured_in_observation=True).stage == 3


def test_written_off_is_loss_and_stage_3_but_bucket_follows_dpd() -> None:
    result = classify(45, written_off=True)
    assert result == Classification(45, "M2", FiveCategory.LOSS, 3)


def test_negative_dpd_is_treated_as_current() -> None:
    assert classify(-5) == Classification(0, "M0", FiveCategory.NORMAL, 1)


def test_chinese_names_and_dict() -> None:
    assert [c.chinese for c in FiveCategory] == ["正常", "关注", "次级", "可疑", "损失"]
    assert classify(95).as_dict() == {
        "dpd": 95,
        "bucket": "M4",
        "category": "substandard",
        "stage": 3,
    }


def test_policy_is_configurable() -> None:
    policy = DelinquencyPolicy(bucket_upper_bounds=(0, 30, 90), stage2_after=15)
    assert classify(91, policy=policy).bucket == "M3+"
    assert classify(16, policy=policy).stage == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bucket_upper_bounds": (0, 30, 30)},
        {"bucket_upper_bounds": (30, 0)},
        {"bucket_upper_bounds": ()},
        {"doubtful_after": 90},
        {"loss_after": 200},
        {"stage2_after": 90},
    ],
)
def test_policy_bounds_must_be_strictly_increasing(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DelinquencyPolicy(**kwargs)  # type: ignore[arg-type]
