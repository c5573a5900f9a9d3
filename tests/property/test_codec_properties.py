"""The stored form of events and snapshots (ledger.persistence.codec): whatever a loan lives
through comes back out equal, snapshots restore the same state as replay, and stores written
by the library's own transcoder still read."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import JSONTranscoder, Mapper
from hypothesis import given
from hypothesis import strategies as st

from domain.complaint import Complaint, ComplaintState
from domain.loan import Loan
from domain.loan.state import InstallmentState, LoanState
from ledger.persistence.codec import LedgerMapper
from ledger.persistence.transcodings import register_all
from tests.factories import active_loan, filed_complaint, state_of
from tests.property.test_loan_properties import PROPERTY_SETTINGS, Step, live, loans, steps


def library_transcoder() -> JSONTranscoder:
    """The transcoder the ledger used before its own codec (what an older store holds)."""
    transcoder = JSONTranscoder()
    from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, UUIDAsHex

    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    register_all(transcoder)
    return transcoder


MAPPER = LedgerMapper(transcoder=library_transcoder())
LEGACY = Mapper(transcoder=library_transcoder())


def round_trip(event: Any, writer: Mapper[Any] = MAPPER) -> Any:
    return MAPPER.to_domain_event(writer.to_stored_event(event))


@PROPERTY_SETTINGS
@given(loan=loans, plan=st.lists(steps, max_size=12))
def test_every_event_of_a_random_life_reads_back_equal(loan: Loan, plan: list[Step]) -> None:
    events = live(loan, plan, lambda _: None)
    for event in events:
        back = round_trip(event)
        assert type(back) is type(event)
        assert vars(back) == vars(event)


@PROPERTY_SETTINGS
@given(loan=loans, plan=st.lists(steps, max_size=12))
def test_a_stored_snapshot_restores_the_live_state(loan: Loan, plan: list[Step]) -> None:
    live(loan, plan, lambda _: None)
    restored = round_trip(Loan.Snapshot.take(loan)).mutate(None)
    assert vars(restored) | {"_pending_events": []} == vars(loan) | {"_pending_events": []}
    # Nothing is shared with the live loan: closing a day on one leaves the other alone.
    assert all(a is not b for a, b in zip(restored.installments, loan.installments, strict=True))


def test_events_and_snapshots_written_by_the_library_transcoder_still_read() -> None:
    loan = active_loan()
    loan.close_day(date(2026, 3, 20))
    loan.receive_repayment(date(2026, 3, 21), Decimal("500"), "CNY")
    for event in loan.collect_events():
        stored = LEGACY.to_stored_event(event)
        assert b'"_type_"' in stored.state
        assert vars(MAPPER.to_domain_event(stored)) == vars(event)
    snapshot = Loan.Snapshot.take(loan)
    assert state_of(round_trip(snapshot, LEGACY).mutate(None)) == state_of(loan)
    complaint = filed_complaint()
    assert state_of(
        round_trip(Complaint.Snapshot.take(complaint), LEGACY).mutate(None)
    ) == state_of(complaint)


def test_the_stored_form_is_plain_json_an_auditor_can_read() -> None:
    loan = active_loan()
    loan.close_day(date(2026, 2, 1))
    accrued = loan.collect_events()[-1]
    stored = MAPPER.to_stored_event(accrued)
    data = orjson.loads(stored.state)
    assert data["_v"] == 2
    assert data["business_date"] == "2026-02-01"
    assert data["amount"] == str(accrued.amount)
    assert stored.topic == "loan.InterestAccrued"


def test_each_aggregate_declares_exactly_the_state_it_keeps() -> None:
    bookkeeping = {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}
    assert set(vars(active_loan())) - bookkeeping == set(LoanState.__annotations__)
    assert set(vars(filed_complaint())) - bookkeeping == set(ComplaintState.__annotations__)


def test_an_undeclared_attribute_is_refused_when_snapshotting() -> None:
    loan = active_loan()
    loan.nickname = "x"  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="nickname"):
        MAPPER.to_stored_event(Loan.Snapshot.take(loan))


def test_a_decimal_in_an_untyped_field_is_refused_not_stringified() -> None:
    loan = active_loan()
    event = loan.collect_events()[-1]
    object.__setattr__(event, "schedule", [{"principal": Decimal("1.00")}])
    with pytest.raises(TypeError, match="untyped field"):
        MAPPER.to_stored_event(event)


def overdue_written_off_loan() -> Loan:
    loan = active_loan()
    loan.close_day(date(2026, 3, 20))
    loan.write_off(date(2026, 3, 21), "uncollectable")
    return loan


def test_an_installment_row_stored_before_closed_by_was_kept_still_reads() -> None:
    # Given a snapshot whose installment rows have the old eight elements (no closed_by),
    loan = overdue_written_off_loan()
    stored = MAPPER.to_stored_event(Loan.Snapshot.take(loan))
    data = orjson.loads(stored.state)
    rows = data["state"]["installments"]
    # (today a ninth element is written only for an installment closed other than by payments)
    assert [len(r) for r in rows] == [9] * len(rows) and rows[0][8] == "written_off"
    untouched = orjson.loads(MAPPER.to_stored_event(Loan.Snapshot.take(active_loan())).state)
    assert {len(r) for r in untouched["state"]["installments"]} == {8}
    data["state"]["installments"] = [r[:8] for r in rows]
    old = type(stored)(
        stored.originator_id, stored.originator_version, stored.topic, orjson.dumps(data)
    )
    # it restores the same loan, with installments not marked as closed otherwise.
    restored = MAPPER.to_domain_event(old).mutate(None)
    assert [i.closed_by for i in restored.installments] == [""] * len(rows)
    for inst in loan.installments:
        inst.closed_by = ""
    assert state_of(restored) == state_of(loan)


def test_an_installment_dict_without_closed_by_still_reads() -> None:
    # The library transcoder's form (older stores) and schedules in events have no such key.
    [inst] = active_loan().installments[:1]
    data = inst.as_dict()
    assert data.pop("closed_by") == ""
    assert InstallmentState.from_dict(data) == inst


@pytest.mark.parametrize("writer", [MAPPER, LEGACY], ids=["codec", "library transcoder"])
def test_a_write_off_stored_before_it_carried_the_dpd_reads_with_dpd_none(
    writer: Mapper[Any],
) -> None:
    # Given a WrittenOff as stored before version 2: no dpd and no class_version,
    loan = overdue_written_off_loan()
    written_off = loan.collect_events()[-1]
    assert isinstance(written_off, Loan.WrittenOff) and written_off.dpd == 39
    stored = writer.to_stored_event(written_off)
    if writer is MAPPER:
        data = orjson.loads(stored.state)
        assert data["class_version"] == 2
        del data["dpd"], data["class_version"]
        payload = orjson.dumps(data)
    else:
        data = writer.transcoder.decode(stored.state)
        del data["dpd"], data["class_version"]
        payload = writer.transcoder.encode(data)
    old = type(stored)(stored.originator_id, stored.originator_version, stored.topic, payload)
    # it reads back under its pinned topic with dpd None (upcast from version 1),
    back = MAPPER.to_domain_event(old)
    assert type(back) is Loan.WrittenOff and stored.topic == "loan.WrittenOff"
    assert back.dpd is None
    assert {k: v for k, v in vars(back).items() if k != "dpd"} == {
        k: v for k, v in vars(written_off).items() if k != "dpd"
    }
    # and a version-2 payload reads back with its dpd.
    assert MAPPER.to_domain_event(stored).dpd == 39
