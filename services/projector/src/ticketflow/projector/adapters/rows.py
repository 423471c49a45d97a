"""A read-model table whose rows are msgspec Structs, field for column: load the rows of a batch's keys,
write the changed ones back in one statement (`unnest` of one array per column), delete the gone ones.
Scalar fields are columns of their own type; lists become `jsonb` (unnest would flatten arrays of arrays).
Table names are unqualified: a rebuild runs the same SQL on its copies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec
from msgspec import inspect

T = TypeVar("T", bound=msgspec.Struct)

_SCALARS: dict[type, str] = {
    inspect.UUIDType: "uuid",
    inspect.StrType: "text",
    inspect.LiteralType: "text",
    inspect.IntType: "bigint",
    inspect.FloatType: "float8",
    inspect.BoolType: "bool",
    inspect.DateTimeType: "timestamptz",
    inspect.DateType: "date",
}
_JSON = (inspect.ListType, inspect.TupleType, inspect.VarTupleType, inspect.DictType, inspect.StructType)


def column_type(info: inspect.Type) -> str:
    """The column type of a Struct field ("jsonb" for lists; optional fields: the type without None)."""
    if isinstance(info, inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        if len(kinds) == 1:
            return column_type(kinds[0])
    elif isinstance(info, _JSON):
        return "jsonb"
    elif type(info) in _SCALARS:
        return _SCALARS[type(info)]
    raise TypeError(f"no column type for {info!r}")


class RowTable(Generic[T]):
    def __init__(self, table: str, row_type: type[T], key: Sequence[str]) -> None:
        info = inspect.type_info(row_type)
        assert isinstance(info, inspect.StructType)
        self.table, self.row_type, self.key = table, row_type, tuple(key)
        self.columns = tuple(f.name for f in info.fields)
        kinds = [column_type(f.type) for f in info.fields]
        self._json = [i for i, kind in enumerate(kinds) if kind == "jsonb"]
        hints = [f.type for f in msgspec.structs.fields(row_type)]
        self._decoders = {i: msgspec.json.Decoder(hints[i]) for i in self._json}
        names = ", ".join(self.columns)
        arrays = ", ".join(f"${i + 1}::{'text' if kind == 'jsonb' else kind}[]" for i, kind in enumerate(kinds))
        values = ", ".join(f"u.{c}::jsonb" if kinds[i] == "jsonb" else f"u.{c}" for i, c in enumerate(self.columns))
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
        select = "SELECT " + ", ".join(f"{c}::text" if kinds[i] == "jsonb" else c for i, c in enumerate(self.columns))
        self._select = f"{select} FROM {table} WHERE {self.key[0]} = ANY($1)"
        self._insert = f"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays}) AS u({names})"
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        self._upsert = f"{self._insert} ON CONFLICT ({', '.join(self.key)}) {conflict}"
        self._delete = f"DELETE FROM {table} WHERE {self.key[0]} = ANY($1)"

    async def load(self, conn: Any, keys: Sequence[Any]) -> list[T]:
        """The rows whose first key column is one of `keys`."""
        if not keys:
            return []
        records = await conn.fetch(self._select, list(keys))
        make = self.row_type
        if not self._json:
            return [make(*record) for record in records]
        rows = []
        for record in records:
            values = list(record)
            for i in self._json:
                values[i] = self._decoders[i].decode(values[i])
            rows.append(make(*values))
        return rows

    async def upsert(self, conn: Any, rows: Sequence[T]) -> None:
        if rows:
            await conn.execute(self._upsert, *self._arrays(rows))

    async def insert(self, conn: Any, rows: Sequence[T]) -> None:
        if rows:
            await conn.execute(self._insert, *self._arrays(rows))

    async def delete(self, conn: Any, keys: Sequence[Any]) -> None:
        """Delete the rows whose first key column is one of `keys`."""
        if keys:
            await conn.execute(self._delete, list(keys))

    def _arrays(self, rows: Sequence[T]) -> list[list[Any]]:
        columns = [list(column) for column in zip(*(msgspec.structs.astuple(r) for r in rows), strict=True)]
        for i in self._json:
            columns[i] = [_encode(v).decode() for v in columns[i]]
        return columns


_encode = msgspec.json.Encoder().encode
