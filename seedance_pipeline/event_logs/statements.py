"""The SQLite event log's hot statements, compiled once by SQLAlchemy and run on the driver's own connection.

A clips run stores eight events a clip in the step's thread (a materialization and seven check evaluations), each
with two to four INSERTs and UPDATEs. SQLAlchemy builds every ``Connection.execute`` anew (cache key, compiled
lookup, execution context, result proxy): a quarter of the step thread's CPU, against 2 % in SQLite itself
(benchmarks/README.md, "Measurements behind the code", M25). Here each statement of a table and a set of columns is
compiled once, by SQLAlchemy for the connection's dialect (its SQL text, quoting and each column's bind processor,
e.g. the text format of a DateTime), then run with ``sqlite3``'s ``execute`` on the DBAPI connection under the
SQLAlchemy ``Connection``: in the same transaction, committed by SQLAlchemy as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Table, and_, bindparam
from sqlalchemy.engine import Connection, Dialect

_Compiled = tuple[str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]


class Statements:
    """INSERT and UPDATE of Dagster's event-log tables for one SQL dialect (SQLite's qmark parameters)."""

    def __init__(self, dialect: Dialect):
        self._dialect = dialect
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.Lock()

    def insert(self, conn: Connection, table: Table, values: Mapping[str, Any]) -> int:
        """Insert one row; its primary key (SQLite's rowid)."""
        sql, params = self._statement(("insert", table.name, tuple(values)), lambda: _insert(table, values))
        cursor = _driver(conn).execute(sql, _bound(params, values))
        rowid = cursor.lastrowid
        if rowid is None:  # not for a table with an integer primary key, as every table written here has
            raise RuntimeError(f"no rowid for a row inserted into {table.name}")
        return rowid

    def update(self, conn: Connection, table: Table, values: Mapping[str, Any], where: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows whose columns equal ``where`` (None: IS NULL); how many rows."""
        nulls = tuple(k for k, v in where.items() if v is None)
        key = ("update", table.name, tuple(values), tuple(where), nulls)
        sql, params = self._statement(key, lambda: _update(table, values, where, nulls))
        bound = {**{f"v_{k}": v for k, v in values.items()}, **{f"w_{k}": v for k, v in where.items()}}
        return _driver(conn).execute(sql, _bound(params, bound)).rowcount

    def _statement(self, key: tuple, build: Callable[[], Any]) -> _Compiled:
        found = self._compiled.get(key)
        if found is not None:
            return found
        compiled = build().compile(dialect=self._dialect)
        positions = compiled.positiontup
        if positions is None:
            raise ValueError(f"{self._dialect.name}: a dialect with positional parameters is needed")
        params = tuple(
            (name, compiled.binds[name].type.dialect_impl(self._dialect).bind_processor(self._dialect))
            for name in positions
        )
        statement = (str(compiled), params)
        with self._lock:
            self._compiled[key] = statement
        return statement


def _insert(table: Table, values: Mapping[str, Any]) -> Any:
    return table.insert().values({name: bindparam(name, type_=table.c[name].type) for name in values})


def _update(table: Table, values: Mapping[str, Any], where: Mapping[str, Any], nulls: tuple[str, ...]) -> Any:
    conditions = [table.c[k].is_(None) if k in nulls else table.c[k] == bindparam(f"w_{k}") for k in where]
    new = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in values}
    return table.update().where(and_(*conditions)).values(new)


def _bound(params: tuple[tuple[str, Callable[[Any], Any] | None], ...], values: Mapping[str, Any]) -> tuple:
    """The values in the statement's order, each through its column's bind processor (None stays NULL)."""
    out = []
    for name, convert in params:
        value = values[name]
        out.append(value if convert is None or value is None else convert(value))
    return tuple(out)


def _driver(conn: Connection) -> Any:
    """The DBAPI (``sqlite3``) connection under ``conn``, in ``conn``'s transaction."""
    return conn.connection.driver_connection
