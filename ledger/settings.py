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
