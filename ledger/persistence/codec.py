"""How events and snapshots are stored: typed JSON, decoded by each class's own field types.

The library's transcoder makes JSON self-describing: every Decimal, date and datetime becomes
``{"_type_": …, "_data_": …}`` and decoding runs a Python hook on *every* JSON object. Loading
loans (end of day) and rebuilding projections spent most of their time there. Here the event
class says what each field is (its annotations), so the JSON holds plain values
(``"amount": "12.34"``, ``"business_date": "2026-06-01"``) and decoding converts only the
typed fields of each class with converters compiled once per class; ``orjson`` does the
parsing.

- Events: their dataclass fields (``typing.get_type_hints``).
- Snapshots: the aggregate's ``State`` TypedDict (every attribute the aggregate keeps).
- Payloads start with ``{"_v":2,`` and every other payload is read with the library's
  transcoder, so a store written before this codec still replays.

Values of untyped fields (``dict[str, Any]``) must already be plain JSON (str, int, bool,
None, lists, dicts): a Decimal or date there raises at encode time instead of coming back
as a string.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Union, cast
from uuid import UUID

import orjson
from eventsourcing.domain import CanSnapshotAggregate
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    find_id_convertor,
)
from eventsourcing.utils import get_topic, resolve_topic

from domain.loan.state import InstallmentState
from domain.terms import LoanTerms

MARK = b'{"_v":2,'
VERSION_KEY = "_v"
PLAIN = (str, int, bool, float, type(None))
Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class Converter:
    encode: Convert
    decode: Convert
    optional: bool = False  # None is stored as null and left alone


def _installment_row(i: InstallmentState) -> list[Any]:
    row = [
        i.number,
        i.start_date.isoformat(),
        i.due_date.isoformat(),
        str(i.principal),
        str(i.interest),
        i.fell_due,
        str(i.principal_paid),
        str(i.interest_paid),
    ]
    if i.closed_by:  # a ninth element only for an installment closed other than by payments
        row.append(i.closed_by)
    return row


def _installment(row: list[Any]) -> InstallmentState:
    # Eight elements: not closed otherwise (``closed_by`` keeps its default), which is also
    # every row written before it was kept. Loading a loan builds every installment here.
    if len(row) == 8:
        n, start, due, principal, interest, fell_due, principal_paid, interest_paid = row
        return InstallmentState(
            n,
            date.fromisoformat(start),
            date.fromisoformat(due),
            Decimal(principal),
            Decimal(interest),
            fell_due,
            Decimal(principal_paid),
            Decimal(interest_paid),
        )
    n, start, due, principal, interest, fell_due, principal_paid, interest_paid, closed = row
    return InstallmentState(
        n,
        date.fromisoformat(start),
        date.fromisoformat(due),
        Decimal(principal),
        Decimal(interest),
        fell_due,
        Decimal(principal_paid),
        Decimal(interest_paid),
        closed,
    )


# Value types with their own compact form (instances of these never appear in plain JSON).
SPECIAL: dict[Any, Converter] = {
    Decimal: Converter(str, Decimal),
    date: Converter(date.isoformat, date.fromisoformat),
    datetime: Converter(datetime.isoformat, datetime.fromisoformat),
    UUID: Converter(str, UUID),
    InstallmentState: Converter(_installment_row, _installment),
    LoanTerms: Converter(LoanTerms.as_dict, LoanTerms.from_dict),
}


def converter_for(tp: Any) -> Converter | None:
    """How a value of type ``tp`` is stored; None when it is plain JSON already."""
    if tp is Any or tp in PLAIN:
        return None
    if tp in SPECIAL:
        return SPECIAL[tp]
    if isinstance(tp, type) and issubclass(tp, Enum):
        # str/int enums are written as their value by orjson; read back as the enum.
        return Converter(lambda e: e.value, tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"no stored form for the union {tp}")
        inner = converter_for(present[0])
        return None if inner is None else Converter(inner.encode, inner.decode, optional=True)
    if origin is list:
        inner = converter_for(args[0])
        if inner is None:
            return None
        enc, dec = _none_safe(inner)
        return Converter(lambda v: [enc(x) for x in v], lambda v: [dec(x) for x in v])
    if origin is dict:
        if args[0] is not str:
            raise TypeError(f"dict keys must be str to be stored, got {tp}")
        inner = converter_for(args[1])
        if inner is None:
            return None
        enc, dec = _none_safe(inner)
        return Converter(
            lambda v: {k: enc(x) for k, x in v.items()}, lambda v: {k: dec(x) for k, x in v.items()}
        )
    if origin is typing.ClassVar:
        return None
    raise TypeError(f"no stored form for {tp!r}; give it a converter in ledger.persistence.codec")


def _none_safe(conv: Converter) -> tuple[Convert, Convert]:
    """The converter's functions, passing None through when the type is optional (inside a
    list or dict there is no generated line to check for it)."""
    if not conv.optional:
        return conv.encode, conv.decode
    enc, dec = conv.encode, conv.decode
    return (lambda v: None if v is None else enc(v)), (lambda v: None if v is None else dec(v))


class FieldCodec:
    """Converters for one class's typed fields, compiled once into straight-line code.

    Decoding runs for every stored event read (replay, end of day, projection rebuilds), so
    ``decode`` is generated per class, the way ``dataclasses`` generates ``__init__``: one
    line per typed field calling its converter directly, no loop or lookup per field."""

    def __init__(self, hints: dict[str, Any], *, strict: bool) -> None:
        self.converters = {
            name: conv for name, tp in hints.items() if (conv := converter_for(tp)) is not None
        }
        self.fields = frozenset(hints)
        self.strict = strict  # every key must be declared (aggregate state)
        self.decode = self._compile("decode")
        self._encode = self._compile("encode")

    def _compile(self, direction: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        lines, scope = [f"def {direction}(s):"], {}
        for n, (name, conv) in enumerate(self.converters.items()):
            scope[f"c{n}"] = getattr(conv, direction)
            if conv.optional:
                lines += [
                    f"    v = s.get({name!r})",
                    f"    if v is not None: s[{name!r}] = c{n}(v)",
                ]
            else:
                lines += [f"    if {name!r} in s: s[{name!r}] = c{n}(s[{name!r}])"]
        lines.append("    return s")
        # Only field names from the class's own annotations go into the source, never data.
        exec("\n".join(lines), scope)
        return cast(Callable[[dict[str, Any]], dict[str, Any]], scope[direction])

    def encode(self, state: dict[str, Any]) -> dict[str, Any]:
        if self.strict and not self.fields.issuperset(state):
            unknown = sorted(set(state) - self.fields)
            raise TypeError(f"attributes {unknown} are not declared in the aggregate's State")
        return self._encode(state)


AGGREGATE_BASE_STATE = {"_created_on": datetime, "_modified_on": datetime, "class_version": int}
EVENT_ENVELOPE = ("originator_id", "originator_version", "originator_id_type")


@cache
def event_codec(cls: type) -> FieldCodec:
    hints = {
        name: tp for name, tp in typing.get_type_hints(cls).items() if name not in EVENT_ENVELOPE
    }
    if VERSION_KEY in hints:
        raise TypeError(f"{cls.__qualname__} may not have a field named {VERSION_KEY!r}")
    return FieldCodec(hints, strict=False)


@cache
def state_codec(aggregate_topic: str) -> FieldCodec:
    aggregate = resolve_topic(aggregate_topic)
    declared = getattr(aggregate, "State", None)
    if declared is None:
        raise TypeError(f"{aggregate.__qualname__} declares no State; it cannot be snapshotted")
    return FieldCodec({**AGGREGATE_BASE_STATE, **typing.get_type_hints(declared)}, strict=True)


def _reject(value: Any) -> Any:
    raise TypeError(
        f"{type(value).__name__} {value!r} in an untyped field; declare the "
        "field's type on the event or store a plain value"
    )


def dumps(state: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(state, default=_reject, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError as e:
        raise TypeError(str(e.__cause__ or e)) from e


class LedgerMapper(Mapper[UUID]):
    """The library's mapper with typed JSON (above) as the stored form."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        cls: type = type(domain_event)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        state = event_codec(cls).encode(state)
        if isinstance(domain_event, CanSnapshotAggregate):
            state["state"] = state_codec(domain_event.topic).encode(dict(state["state"]))
        payload = dumps({VERSION_KEY: 2, **state})
        if self.compressor:
            payload = self.compressor.compress(payload)
        if self.cipher:
            payload = self.cipher.encrypt(payload)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(cls),
            state=payload,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls, decode, is_snapshot, class_version = _reader(stored_event.topic)
        payload = stored_event.state
        try:
            if self.cipher:
                payload = self.cipher.decrypt(payload)
            if self.compressor:
                payload = self.compressor.decompress(payload)
            if payload.startswith(MARK):
                state = decode(orjson.loads(payload))
                del state[VERSION_KEY]
                if is_snapshot:
                    state_codec(state["topic"]).decode(state["state"])
            else:  # written by the library's transcoder
                state = self.transcoder.decode(payload)
        except Exception as e:
            msg = (
                f"Failed to deserialise state of stored event with topic "
                f"'{stored_event.topic}', originator_id '{stored_event.originator_id}' and "
                f"originator_version {stored_event.originator_version}: {e}"
            )
            raise MapperDeserialisationError(msg) from e
        originator_id = stored_event.originator_id
        if type(originator_id) is not UUID:
            originator_id = find_id_convertor(cls, cast(Hashable, type(originator_id)))(
                originator_id
            )
        state["originator_id"] = originator_id
        state["originator_version"] = stored_event.originator_version
        if class_version > 1:
            from_version = state.pop("class_version", 1)
            while from_version < class_version:
                getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
                from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event


@cache
def _reader(topic: str) -> tuple[Any, Convert, bool, int]:
    """What reading one topic needs, looked up once: the class, its compiled field decoder,
    whether it is a snapshot (its ``state`` decoded by the aggregate's State) and its
    class version (older stored versions are upcast)."""
    cls = resolve_topic(topic)
    return (
        cls,
        event_codec(cls).decode,
        issubclass(cls, CanSnapshotAggregate),
        getattr(cls, "class_version", 1),
    )
