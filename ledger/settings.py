"""One settings object for the whole process, read from ``LEDGER_*`` environment variables."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.terms import PrepaymentOption, ProductTerms


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./ledger.db"

    # Product defaults copied into each loan's terms when it is applied for.
    rate_cap: Decimal = Field(Decimal("0.24"), gt=0, description="maximum annual rate")
    grace_days: int = Field(0, ge=0, le=90)
    penalty_markup: Decimal = Field(Decimal("0.5"), ge=0)
    compound_penalty: bool = False
    waterfall: str = "standard"
    prepayment: PrepaymentOption = PrepaymentOption.SHORTEN_TERM
    allow_overpayment: bool = True
    rounding: str = "ROUND_HALF_EVEN"
    observation_days: int = Field(365, ge=0)

    # Engine behaviour.
    snapshot_interval: int = Field(200, ge=10)
    aggregate_cache_size: int = Field(10_000, ge=0, description="0 turns the cache off")
    command_retries: int = Field(5, ge=1)
    eod_chunk_size: int = Field(500, ge=1)
    # End of day re-snapshots a loan it touched once this many events follow its snapshot,
    # so a load replays at most that many (1: a fresh snapshot every night; 0: never).
    eod_snapshot_after: int = Field(30, ge=0)
    eod_workers: int = Field(1, ge=1, le=64, description="processes per end-of-day run")
    eod_lock_wait: float = Field(0, ge=0, description="seconds a second EOD waits for the lock")
    eod_lock_ttl: float = Field(60, gt=1, description="SQLite lock row expiry without heartbeat")

    # Scheduler: end of day runs daily at eod_time in timezone and closes that calendar day
    # (the day before when eod_closes_previous_day, for a close after midnight).
    eod_time: str = Field("22:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "Asia/Shanghai"
    eod_closes_previous_day: bool = False
    scheduler_misfire_grace: int = Field(7 * 24 * 3600, ge=1,
                                         description="seconds a missed run may still start")
    scheduler_lock_wait: float = Field(3600, ge=0,
                                       description="seconds a scheduled EOD waits for the lock")

    # Complaint-handling service levels (the complaint history projection records breaches).
    complaint_ack_sla_business_days: int = Field(1, ge=0)
    complaint_resolve_sla_days: int = Field(15, ge=0)

    def product_terms(self) -> ProductTerms:
        return ProductTerms(
            grace_days=self.grace_days,
            penalty_markup=self.penalty_markup,
            compound_penalty=self.compound_penalty,
            waterfall=self.waterfall,
            prepayment=self.prepayment,
            allow_overpayment=self.allow_overpayment,
            rounding=self.rounding,
            rate_cap=self.rate_cap,
            observation_days=self.observation_days,
        )
