"""Hints for SQLite's query planner, which the other databases do not need.

Without statistics (no ANALYZE is run) SQLite takes any range on an indexed column for a
selective one, and may pick that index over one that serves the ORDER BY and LIMIT. `likely`
wraps a condition in SQLite's likely() function: SQLAlchemy writes a boolean function as
`likely(condition) = 1` on SQLite, a term SQLite can no longer search an index for, so that
it picks its index by the other terms (tests/test_query_plans.py checks the plans).
PostgreSQL plans from its own statistics and gets the condition as it is.

`by_key` is the other common case: a statement that names its rows by primary key (`id IN
(...)`) and also checks their state (queued, due, not carried). Those checks name indexed
columns, and SQLite, taking a range on them for a selective one, walked the due index (every
queued message) rather than looking up the few ids: a claim of five messages with 20,200
queued ran 90 times as many instructions as with 200 (tests/test_query_plans.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class likely(FunctionElement[bool]):  # named as the SQL function it renders
    """`condition`, kept out of SQLite's choice of index (see the module's docstring)."""

    type = Boolean()
    inherit_cache = True
    name = "likely"


@compiles(likely)
def _as_it_is(element: likely, compiler: SQLCompiler, **kw: Any) -> str:
    [condition] = element.clauses
    # In brackets: `likely` stands where one term does (an AND's, usually), and an OR within it
    # would otherwise bind looser than the terms around it (`id IN (...) AND a OR b`).
    return f"({compiler.process(condition, **kw)})"


@compiles(likely, "sqlite")
def _for_sqlite(element: likely, compiler: SQLCompiler, **kw: Any) -> str:
    [condition] = element.clauses
    return f"likely({compiler.process(condition, **kw)})"


def by_key(
    key: ColumnElement[bool], *state: ColumnElement[bool]
) -> tuple[ColumnElement[bool], ...]:
    """The rows `key` names (by primary key), if they are in `state`: conditions for a WHERE in
    which only `key` is searched in an index (see the module's docstring)."""
    return (key, likely(and_(*state))) if state else (key,)
