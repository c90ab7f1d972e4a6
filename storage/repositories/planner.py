"""Hints for SQLite's query planner, which the other databases do not need.

Without statistics (no ANALYZE is run) SQLite takes any range on an indexed column for a
selective one, and may pick that index over one that serves the ORDER BY and LIMIT. `likely`
tells it a condition holds for most rows, so it is no reason to pick an index; PostgreSQL
plans from its own statistics and gets the condition as it is.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class likely(FunctionElement[bool]):  # named as the SQL function it renders
    """`condition`, marked for SQLite as true of most rows (its likely() function)."""

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
