"""The event store the application stands on: eventsourcing's Application, configured.

``EventStore`` wires the library to the ledger's database (the recorders in
``ledger.persistence.recorders``, alembic-owned tables), its typed JSON codec (legacy payloads
still read through the library's transcoder), snapshots every ``LEDGER_SNAPSHOT_INTERVAL``
events and the fast-forwarding aggregate cache; plus ``save_many`` for bulk jobs and the
store's transaction for writing beside events. The use cases are
``ledger.app.application.LoanLedger``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, Transcoder
from sqlalchemy import Engine

from domain.complaint import Complaint
from domain.loan import Loan
from ledger.persistence.codec import LedgerMapper
from ledger.persistence.transcodings import register_all
from ledger.settings import Settings, load_settings


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """Replay events onto an aggregate (the library's projector, minus a per-event
    ``typing.Protocol`` isinstance check that cost a third of every load)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class EventStore(Application[UUID]):
    name = "ledger"  # table prefix: ledger_events, ledger_snapshots (subclasses repeat it)

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        # The library declares these on the class; the interval is a setting, so per instance.
        self.snapshotting_intervals = {  # type: ignore[misc]
            Loan: self.settings.snapshot_interval,
            Complaint: 100,
        }
        self.snapshotting_projectors = {Loan: project, Complaint: project}  # type: ignore[misc]
        env = {
            "PERSISTENCE_MODULE": "ledger.persistence.recorders:LedgerFactory",
            "SQLALCHEMY_URL": self.settings.database_url,
            "CREATE_TABLE": "n",  # alembic owns every table
            "IS_SNAPSHOTTING_ENABLED": "y",
        }
        if self.settings.aggregate_cache_size:
            # Cached aggregates are fast-forwarded from the store on every get, so they never
            # run ahead of (or behind) what is committed.
            env["AGGREGATE_CACHE_MAXSIZE"] = str(self.settings.aggregate_cache_size)
            env["AGGREGATE_CACHE_FASTFORWARD"] = "y"
        super().__init__(env=env)

    def construct_mapper(self) -> Mapper[UUID]:
        # Typed JSON (ledger.persistence.codec); the library's transcoder reads older payloads.
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=LedgerMapper
        )

    def register_transcodings(self, transcoder: Transcoder) -> None:
        super().register_transcodings(transcoder)  # type: ignore[arg-type]
        register_all(transcoder)

    @property
    def engine(self) -> Engine:
        engine = self.factory.datastore.engine  # type: ignore[attr-defined]
        assert isinstance(engine, Engine)
        return engine

    def save_many(self, aggregates: Sequence[Aggregate]) -> list[Any]:
        """``save`` for a bulk job's aggregates: the same recording, interval snapshots and
        notifications, without the library's two runtime-protocol ``isinstance`` checks per
        object (a twelfth of end of day)."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def transaction(self) -> Any:
        """The event store's transaction: anything written inside commits with the events."""
        return self.recorder.transaction(commit=True)  # type: ignore[attr-defined]
