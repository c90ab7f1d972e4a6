"""Hints for SQLite's query planner, which the other databases do not need.

Without statistics (no ANALYZE is run) SQLite takes any range on an indexed column for a
selective one, and may pick that index over one that serves the ORDER BY and LIMIT. `likely`
wraps a condition in SQLite's likely() function: SQLAlchemy writes a boolean function as
`likely(condition) = 1` on SQLite, a term SQLite can no longer search an index for, so that
it picks its index by the other terms (tests/test_query_plans.py checks the plans).
PostgreSQL plans from its own statistics and gets the condition as it is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean
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
    return compiler.process(condition, **kw)


@compiles(likely, "sqlite")
def _for_sqlite(element: likely, compiler: SQLCompiler, **kw: Any) -> str:
    [condition] = element.clauses
    return f"likely({compiler.process(condition, **kw)})"
