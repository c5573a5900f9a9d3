"""One settings object for the whole process, read from ``LEDGER_*`` environment variables.

Every value is checked when the settings are loaded (``load_settings``), so a bad variable is
one clear error naming it — ``LEDGER_RATE_CAP='abc'``, ``LEDGER_EOD_TIME=25:00``, an unknown
timezone, waterfall or rounding mode — before anything touches the database.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from domain.allocation import Waterfall
from domain.errors import LedgerError
from domain.errors import ValidationError as LedgerValidationError
from domain.money import ROUNDING_MODES, Currency
from domain.terms import PrepaymentOption, ProductTerms

ENV_PREFIX = "LEDGER_"
#: The databases the ledger runs on: (backend, driver) as in ``sqlite+pysqlite://``.
SUPPORTED_DATABASES = {("sqlite", "pysqlite"), ("postgresql", "psycopg2")}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./ledger.db"

    # Product defaults copied into each loan's terms when it is applied for.
    rate_cap: Decimal = Field(Decimal("0.24"), gt=0, le=10, description="maximum annual rate")
    grace_days: int = Field(0, ge=0, le=90)
    penalty_markup: Decimal = Field(Decimal("0.5"), ge=0, le=10)
    compound_penalty: bool = False
    waterfall: str = "standard"
    prepayment: PrepaymentOption = PrepaymentOption.SHORTEN_TERM
    allow_overpayment: bool = True
    rounding: str = "ROUND_HALF_EVEN"
    observation_days: int = Field(365, ge=0, le=3650)
    #: Largest single amount per currency (ISO code -> amount), e.g. {"CNY": "50000000"};
    #: a currency not listed may go up to what every table holds exactly
    #: (``Currency.max_amount``: 10^11 CNY, 10^13 JPY), which is also the ceiling here.
    max_amounts: dict[str, Decimal] = Field(default_factory=dict)

    # Engine behaviour.
    snapshot_interval: int = Field(200, ge=10)
    aggregate_cache_size: int = Field(10_000, ge=0, description="0 turns the cache off")
    command_retries: int = Field(5, ge=1, le=100)
    eod_chunk_size: int = Field(500, ge=1, le=100_000)
    # End of day re-snapshots a loan it touched once this many events follow its snapshot,
    # so a load replays at most that many (1: a fresh snapshot every night; 0: never).
    eod_snapshot_after: int = Field(30, ge=0)
    eod_workers: int = Field(1, ge=1, le=64, description="processes per end-of-day run")
    eod_lock_wait: float = Field(0, ge=0, description="seconds a second EOD waits for the lock")
    eod_lock_ttl: float = Field(60, gt=1, description="SQLite lock row expiry without heartbeat")
    #: ``ledger eod --through`` more than this many days past the open business day asks
    #: for ``--yes``: each day posts interest and penalties on every active loan.
    eod_confirm_days: int = Field(31, ge=0)

    # Scheduler: end of day runs daily at eod_time in timezone and closes that calendar day
    # (the day before when eod_closes_previous_day, for a close after midnight).
    eod_time: str = Field("22:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "Asia/Shanghai"
    eod_closes_previous_day: bool = False
    scheduler_misfire_grace: int = Field(
        7 * 24 * 3600, ge=1, description="seconds a missed run may still start"
    )
    scheduler_lock_wait: float = Field(
        3600, ge=0, description="seconds a scheduled EOD waits for the lock"
    )

    # Complaint-handling service levels (the complaint history projection records breaches).
    complaint_ack_sla_business_days: int = Field(1, ge=0)
    complaint_resolve_sla_days: int = Field(15, ge=0)

    @field_validator("database_url")
    @classmethod
    def _usable_database(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a database URL; expected sqlite:///path/to/ledger.db or"
                " postgresql+psycopg2://user@host:5432/db"
            ) from None
        backend = url.get_backend_name()
        try:
            driver = url.get_driver_name()
        except ArgumentError:  # an unknown dialect: no default driver to name
            driver = "?"
        if (backend, driver) not in SUPPORTED_DATABASES:
            raise ValueError(
                f"{url.drivername} is not supported: the ledger runs on SQLite"
                " (sqlite:///path) or PostgreSQL (postgresql+psycopg2://…)"
            )
        try:
            url.get_dialect().import_dbapi()
        except ImportError as e:
            raise ValueError(f"the {driver} driver is not installed ({e})") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA timezone such as Asia/Shanghai") from None
        return value

    @field_validator("rounding")
    @classmethod
    def _known_rounding(cls, value: str) -> str:
        if value not in ROUNDING_MODES:
            raise ValueError("must be one of " + ", ".join(sorted(ROUNDING_MODES)))
        return value

    @field_validator("waterfall")
    @classmethod
    def _known_waterfall(cls, value: str) -> str:
        try:
            Waterfall.parse(value)
        except LedgerError as e:
            raise ValueError(e.message) from None
        return value

    @field_validator("max_amounts")
    @classmethod
    def _storable_maximums(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, amount in value.items():
            try:
                currency = Currency.of(code)
            except LedgerError as e:
                raise ValueError(e.message) from None
            if code != currency.code:
                raise ValueError(f"currency codes are ISO 4217 in capitals: {code!r}")
            if not amount.is_finite() or amount <= 0 or amount > currency.max_amount:
                raise ValueError(
                    f"{code} maximum must be above 0 and at most"
                    f" {currency.max_amount} (what every table holds exactly)"
                )
        return value

    @model_validator(mode="after")
    def _valid_product(self) -> Settings:
        self.product_terms()  # the product defaults must make valid terms
        return self

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

    def max_amount(self, currency: str) -> Decimal:
        """The largest single amount a command may carry in ``currency``."""
        ceiling = Currency.of(currency).max_amount
        return min(self.max_amounts.get(currency, ceiling), ceiling)


class InvalidSetting(LedgerValidationError):
    """A ``LEDGER_*`` variable (or .env line, or keyword) has a value the ledger cannot use."""


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and ``overrides``); a bad value is one
    ``InvalidSetting`` naming the variable, the value given and what is expected."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:  # a complex value (JSON) that does not parse
        match = re.search(r'field "(\w+)"', str(exc))
        variable = f"{ENV_PREFIX}{match.group(1).upper()}" if match else "LEDGER settings"
        raise InvalidSetting(
            f'{variable}: not valid JSON (expected an object such as {{"CNY": "50000000"}})',
            field=variable,
            rule="setting",
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        variable = f"{ENV_PREFIX}{name.upper()}" if name else "LEDGER settings"
        given = first.get("input")
        hidden = name in ("", "database_url") or isinstance(given, dict | Settings)
        shown = "" if hidden else f"={given!r}"  # never echo a URL: it may hold a password
        message = first["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if message.startswith(("Input should", "String should")):
            message = message[0].lower() + message[1:]
        raise InvalidSetting(
            f"{variable}{shown}: {message}", field=variable, rule="setting"
        ) from None
