"""Hypothesis strategies for any contract Struct, derived from its own type annotations
(`msgspec.inspect`), so a new event or field is covered by the contract tests without editing them.
A field type the builder does not know fails loudly instead of being skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from ticketflow.contracts.commands import TicketCommand
from ticketflow.contracts.events import EVENT_TYPES

StructT = TypeVar("StructT", bound=msgspec.Struct)

COMMAND_TYPES: dict[str, type[msgspec.Struct]] = {cls.__name__: cls for cls in TicketCommand.__args__}  # type: ignore[attr-defined]
ALL_EVENT_TYPES = sorted(EVENT_TYPES)
ALL_COMMAND_TYPES = sorted(COMMAND_TYPES)
MOSCOW = timezone(timedelta(hours=3))

aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([UTC, MOSCOW])
)


def _for_type(info: mi.Type) -> st.SearchStrategy[Any]:
    match info:
        case mi.StructType():
            return _for_struct(info)
        case mi.StrType():
            return st.text(max_size=12)
        case mi.IntType():
            return st.integers(min_value=-(2**53), max_value=2**53)
        case mi.FloatType():
            return st.floats(allow_nan=False, allow_infinity=False)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.UUIDType():
            return st.uuids()
        case mi.DateTimeType():
            return aware_datetimes
        case mi.LiteralType():
            return st.sampled_from(info.values)
        case mi.UnionType():
            return st.one_of([_for_type(member) for member in info.types])
        case mi.VarTupleType():
            return st.lists(_for_type(info.item_type), max_size=3).map(tuple)
        case mi.ListType():
            return st.lists(_for_type(info.item_type), max_size=3)
        case mi.DictType():
            return st.dictionaries(_for_type(info.key_type), _for_type(info.value_type), max_size=3)
    raise NotImplementedError(f"contract_samples: teach _for_type about {info!r}")


def _for_struct(info: mi.StructType) -> st.SearchStrategy[Any]:
    required = {f.name: _for_type(f.type) for f in info.fields if f.required}
    optional = {f.name: _for_type(f.type) for f in info.fields if not f.required}
    cls = info.cls
    return st.fixed_dictionaries(required, optional=optional).map(lambda fields: cls(**fields))


def instances(cls: type[StructT]) -> st.SearchStrategy[StructT]:
    """Valid instances of `cls`: every required field, any subset of the optional ones."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return _for_struct(info)
