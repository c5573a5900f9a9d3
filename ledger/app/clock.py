"""The ledger's business calendar: the one place that says which day is open.

``ledger_clock.closed_through`` is the last business day end of day closed; the **open business
day** is the day after it. Before the first close the ledger has no calendar yet: the open day
is today in the bank's timezone (``LEDGER_TIMEZONE``). A command may carry only the open day
(before the first close: any day up to today), so inline catch-up never runs past it; and a
command overtaken by end of day notices before it commits (``closed_meanwhile``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from domain.errors import InvalidDate
from ledger.persistence.tables import ledger_clock

ONE_DAY = timedelta(days=1)


class BusinessClock:
    def __init__(self, engine: Engine, timezone: str) -> None:
        self.engine = engine
        self.zone = ZoneInfo(timezone)

    def closed_through(self) -> date | None:
        """The last closed business day (None before the first end of day)."""
        with Session(self.engine) as session:
            closed: date | None = session.execute(select(ledger_clock.c.closed_through)).scalar()
        return closed

    def today(self) -> date:
        """The calendar date now in the bank's timezone."""
        return datetime.now(self.zone).date()

    def open_day(self, closed: date | None = None) -> date:
        """The open business day: the day after the last closed one (today if none closed)."""
        closed = closed if closed is not None else self.closed_through()
        return closed + ONE_DAY if closed else self.today()

    def days_ahead(self, through: date) -> int:
        """How many days ``through`` lies past the open business day (negative: before it)."""
        return (through - self.open_day()).days

    def resolve(self, given: date | None) -> date:
        """A command's business date: the open business day by default, never a closed day,
        never a future one (before the first close: any day up to today)."""
        closed = self.closed_through()
        open_day = self.open_day(closed)
        if given is None:
            return open_day
        if closed is not None and given <= closed:
            raise InvalidDate(
                f"business_date {given} is in a closed business day (closed through {closed});"
                f" the open business day is {open_day}",
                field="business_date",
                rule="not_in_closed_day",
            )
        if given > open_day:
            raise InvalidDate(
                f"business_date {given} is after the open business day {open_day}: a command"
                " cannot be dated in the future",
                field="business_date",
                rule="not_in_future",
            )
        return given

    def check_as_of(self, as_of: date, field: str = "as_of") -> None:
        """An as-of query may ask for any day up to the open business day, not later."""
        open_day = self.open_day()
        if as_of > open_day:
            raise InvalidDate(
                f"{field} {as_of} is after the open business day {open_day}:"
                " there is no state of the future to show",
                field=field,
                rule="not_in_future",
            )

    @staticmethod
    def closed_meanwhile(session: Session, on: date) -> bool:
        """Whether end of day closed ``on`` while a command was being decided.

        Read after the command's inserts, inside its transaction: on SQLite the transaction
        then holds the write lock, so the clock cannot move before it commits; on PostgreSQL
        ``FOR SHARE`` makes end of day's clock update wait for this commit (or this read wait
        for end of day's). Either way a command never lands in a day already closed."""
        query = select(ledger_clock.c.closed_through)
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        closed = session.execute(query).scalar()
        return closed is not None and on <= closed
