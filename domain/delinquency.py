"""Delinquency: days past due and the three views regulators and auditors ask for.

Everything here is derived from a DPD figure and two flags, never stored, so a classification
can be recomputed for any past business date by replaying events. Thresholds are a policy value
because lenders and jurisdictions tune them; the defaults follow PBoC five-category and IFRS 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from itertools import pairwise


def days_past_due(business_date: date, oldest_unpaid_due_date: date | None) -> int:
    """Counted from the oldest unpaid due date, so a partial payment does not reset the clock."""
    if oldest_unpaid_due_date is None:
        return 0
    return max(0, (business_date - oldest_unpaid_due_date).days)


_CHINESE = {
    "normal": "正常",
    "special_mention": "关注",
    "substandard": "次级",
    "doubtful": "可疑",
    "loss": "损失",
}


class FiveCategory(StrEnum):
    """Declared from least to most severe; the declaration order is the severity order."""

    NORMAL = "normal"
    SPECIAL_MENTION = "special_mention"
    SUBSTANDARD = "substandard"
    DOUBTFUL = "doubtful"
    LOSS = "loss"

    @property
    def chinese(self) -> str:
        return _CHINESE[self.value]


def _strictly_increasing(values: tuple[int, ...]) -> bool:
    return all(a < b for a, b in pairwise(values))


@dataclass(frozen=True, slots=True)
class DelinquencyPolicy:
    bucket_upper_bounds: tuple[int, ...] = (0, 30, 60, 90, 120, 150, 180)
    substandard_after: int = 90
    doubtful_after: int = 270
    loss_after: int = 360
    stage2_after: int = 30
    stage3_after: int = 90

    def __post_init__(self) -> None:
        # Overlapping thresholds would make classification depend on check order, not policy.
        if not self.bucket_upper_bounds or not _strictly_increasing(self.bucket_upper_bounds):
            raise ValueError(
                f"bucket_upper_bounds must be non-empty and strictly increasing,"
                f" got {self.bucket_upper_bounds}"
            )
        if self.bucket_upper_bounds[0] < 0:
            raise ValueError("bucket_upper_bounds must start at 0 or more")
        five = (self.substandard_after, self.doubtful_after, self.loss_after)
        if five[0] < 0 or not _strictly_increasing(five):
            raise ValueError(
                f"substandard_after < doubtful_after < loss_after must hold, got {five}"
            )
        stages = (self.stage2_after, self.stage3_after)
        if stages[0] < 0 or not _strictly_increasing(stages):
            raise ValueError(f"stage2_after < stage3_after must hold, got {stages}")

    def bucket(self, dpd: int) -> str:
        for index, upper in enumerate(self.bucket_upper_bounds):
            if dpd <= upper:
                return f"M{index}"
        return f"M{len(self.bucket_upper_bounds)}+"


#: The policy every loan is classified under today (PBoC five-category and IFRS 9 defaults);
#: the read models classify written-off and new loans with it too.
DEFAULT_POLICY = DelinquencyPolicy()


@dataclass(frozen=True, slots=True)
class Classification:
    dpd: int
    bucket: str
    category: FiveCategory
    stage: int

    def as_dict(self) -> dict[str, object]:
        return {
            "dpd": self.dpd,
            "bucket": self.bucket,
            "category": self.category.value,
            "stage": self.stage,
        }


def _category(
    dpd: int, restructured: bool, written_off: bool, policy: DelinquencyPolicy
) -> FiveCategory:
    if written_off or dpd > policy.loss_after:
        return FiveCategory.LOSS
    if dpd > policy.doubtful_after:
        return FiveCategory.DOUBTFUL
    if dpd > policy.substandard_after:
        return FiveCategory.SUBSTANDARD
    if dpd > 0 or restructured:
        return FiveCategory.SPECIAL_MENTION
    return FiveCategory.NORMAL


def _stage(dpd: int, restructured: bool, written_off: bool, policy: DelinquencyPolicy) -> int:
    if written_off or dpd > policy.stage3_after:
        return 3
    if dpd > policy.stage2_after or restructured:
        return 2
    return 1


def classify(
    dpd: int,
    *,
    restructured_in_observation: bool = False,
    written_off: bool = False,
    policy: DelinquencyPolicy = DEFAULT_POLICY,
) -> Classification:
    """Restructuring and write-off only ever make a loan look worse, never better than its DPD;
    a written-off loan keeps its DPD bucket so collections reporting still ages it."""
    days = max(0, dpd)
    return Classification(
        dpd=days,
        bucket=policy.bucket(days),
        category=_category(days, restructured_in_observation, written_off, policy),
        stage=_stage(days, restructured_in_observation, written_off, policy),
    )
