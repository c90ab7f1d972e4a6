"""What accepting a message needs to know of its recipient, remembered between requests.

`gateway.submission` checks every message against the recipient's state: their linked personal
log and its topics, their verified contacts, their preferences. Those change rarely (the person
runs /setup, /prefs, adds an address), yet reading them cost three database round trips per
request. `RecipientCache` keeps an immutable `RecipientSnapshot` per person instead. The
delivery worker, in the process that runs the bot, takes each message's personal log from the
same snapshots (`log_view`; gateway.delivery.attempt `Deliverer._log_of`).

Invalidation cannot be forgotten: binding a cache to a sessionmaker gives that sessionmaker a
session class of its own whose events report every write to the tables a snapshot is made of.

- ORM changes (`session.add`, attribute changes, `session.delete`): `after_flush` notes whose
  state the flushed `LogGroup`, `Topic`, `Contact`, `UserPreferences` and `User` rows belong to;
  the root transaction's commit forgets those people. A transaction that ends otherwise
  (rollback, close) changed nothing, and what it noted is dropped.
- Bulk statements through a session (`update()`, `delete()`, `insert()`, textual SQL) on those
  tables: the people are taken from a `WHERE owner = value` where there is one; otherwise the
  whole cache is forgotten at commit. An `update()` that sets none of the columns a snapshot
  reads (e.g. a contact's failure streak) forgets nothing.
- The fill race: `load` takes a ticket (the cache's generation) before it reads; every
  invalidation advances the generation, and a snapshot read under an older ticket is not kept
  (it may predate the change). Misses for a person whose read is in flight share it, unless
  something was invalidated since it began.

Not seen: writes that bypass the sessionmaker (another process, `engine.connect()`, the legacy
`Session.bulk_*` methods). Entries therefore also expire after `ttl` (as `gateway.token_cache`),
which bounds how long such a write goes unnoticed. One event loop only: not thread-safe.
"""

from __future__ import annotations

import dataclasses
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.sql.dml import Delete, Insert, Update, UpdateBase
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, TextClause
from sqlalchemy.sql.operators import and_, eq

from gateway.preferences import to_preferences
from gateway.routing import Preferences, RecipientState
from gateway.shared_reads import SharedReads
from storage.enums import Category, Channel
from storage.models import Contact, LogGroup, Topic, User, UserPreferences
from storage.repositories import contacts, groups
from storage.repositories.groups import LogView

MAX_ENTRIES = 10_000
DEFAULT_TTL_SECONDS = 60.0

# Per table a snapshot is made of: the columns that name whose rows a statement touches, when
# its WHERE pins them to values: (column, True for a group id / False for a person's id).
_PINS: dict[str, tuple[tuple[str, bool], ...]] = {
    "users": (("id", False),),
    "log_groups": (("owner_id", False), ("id", True)),
    "topics": (("group_id", True),),
    "contacts": (("user_id", False),),
    "user_preferences": (("user_id", False),),
}
# Per table, the columns a snapshot depends on; an UPDATE setting none of them changes no
# snapshot. None: every column (a snapshot holds the preferences whole).
_READ_COLUMNS: dict[str, frozenset[str] | None] = {
    "users": frozenset({"id"}),
    "log_groups": frozenset({"id", "owner_id", "chat_id", "unlinked_at"}),
    "topics": frozenset({"id", "group_id", "category", "message_thread_id"}),
    "contacts": frozenset({"id", "user_id", "channel", "state"}),
    "user_preferences": None,
}
_WRITING_SQL = re.compile(r"\b(insert|update|delete|replace|drop|alter)\b", re.IGNORECASE)
_TABLE_NAMES = re.compile(r"\b(" + "|".join(_READ_COLUMNS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RecipientSnapshot:
    """The recipient's state as of one read, detached from any session. Never mutated."""

    group_id: int | None  # the linked personal log; None: none linked
    topics: Mapping[Category, int | None]  # category -> thread id (read-only)
    verified_channels: frozenset[Channel]
    # to_preferences() of the stored row, or what it raised (such a snapshot is not cached:
    # the error is raised where the request reaches the preferences, as before caching).
    stored_preferences: Preferences | Exception
    default_retention_seconds: int | None
    default_ephemeral: bool
    chat_id: int | None = None  # the linked personal log's Telegram chat
    routing: RecipientState = field(init=False)
    thread_ids: frozenset[int] = field(init=False)
    # The linked personal log as the delivery worker reads it (None: none linked).
    log_view: LogView | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "routing",
            RecipientState(
                linked_group=self.group_id is not None,
                topics=self.topics,
                verified_channels=self.verified_channels,
            ),
        )
        thread_ids = frozenset(t for t in self.topics.values() if t is not None)
        object.__setattr__(self, "thread_ids", thread_ids)
        view = None
        if self.group_id is not None and self.chat_id is not None:
            view = LogView(self.group_id, self.chat_id, self.topics)
        object.__setattr__(self, "log_view", view)

    @property
    def linked_group(self) -> bool:
        return self.group_id is not None

    @property
    def preferences(self) -> Preferences:
        """The routing preferences; raises what reading the stored row raised."""
        if isinstance(self.stored_preferences, Exception):
            raise self.stored_preferences
        return self.stored_preferences

    @property
    def cacheable(self) -> bool:
        return not isinstance(self.stored_preferences, Exception)


async def read_snapshot(session: AsyncSession, owner_id: int) -> RecipientSnapshot:
    """The person's state from the database (three reads)."""
    group = await groups.linked_group_of(session, owner_id)
    verified = await contacts.verified_channels(session, owner_id)
    stored = await session.get(UserPreferences, owner_id)
    prefs: Preferences | Exception
    try:
        prefs = to_preferences(stored)
    except Exception as exc:  # a row the bot would never have written; raised in its place
        prefs = exc
    else:
        prefs = dataclasses.replace(prefs, categories=MappingProxyType(dict(prefs.categories)))
    topics = {t.category: t.message_thread_id for t in group.topics} if group else {}
    return RecipientSnapshot(
        group_id=group.id if group is not None else None,
        topics=MappingProxyType(topics),
        verified_channels=verified,
        stored_preferences=prefs,
        default_retention_seconds=stored.default_retention_seconds if stored else None,
        default_ephemeral=stored.default_ephemeral if stored else False,
        chat_id=group.chat_id if group is not None else None,
    )


class RecipientCache:
    """Snapshots by person (user id): LRU-bounded, expiring, invalidated by the sessionmaker's
    own writes (see the module docstring). Build it before the sessionmaker's first session."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_entries: int = MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.sessionmaker = sessionmaker
        self._max = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[int, tuple[RecipientSnapshot, float]] = OrderedDict()
        self._owner_of_group: dict[int, int] = {}  # linked group id -> owner, of the entries
        self._generation = 0
        self.reads: SharedReads[int, RecipientSnapshot] = SharedReads(self.ticket)
        self.hits = 0
        _hooks_of(sessionmaker).caches.add(self)

    @classmethod
    def of(
        cls, sessionmaker: async_sessionmaker[AsyncSession], given: RecipientCache | None
    ) -> RecipientCache:
        """`given` (the composition root's, which must be bound to `sessionmaker`), else a
        cache of the caller's own."""
        if given is None:
            return cls(sessionmaker)
        if given.sessionmaker is not sessionmaker:
            raise ValueError("the recipient cache must be bound to the caller's sessionmaker")
        return given

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, owner_id: int) -> RecipientSnapshot | None:
        entry = self._entries.get(owner_id)
        if entry is None:
            return None
        snapshot, expires_at = entry
        if self._clock() >= expires_at:
            self._drop(owner_id)
            return None
        self._entries.move_to_end(owner_id)
        return snapshot

    def ticket(self) -> int:
        """Take before reading what will be stored: `store` refuses it after an invalidation."""
        return self._generation

    def store(self, owner_id: int, snapshot: RecipientSnapshot, ticket: int) -> bool:
        """Keep `snapshot` unless something was invalidated since `ticket`; whether kept."""
        if ticket != self._generation or not snapshot.cacheable:
            return False
        self._drop(owner_id)
        self._entries[owner_id] = (snapshot, self._clock() + self._ttl)
        if snapshot.group_id is not None:
            self._owner_of_group[snapshot.group_id] = owner_id
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))
        return True

    async def load(self, owner_id: int) -> RecipientSnapshot:
        """The cached snapshot, or one read now and kept if nothing changed meanwhile. Misses
        for a person whose read is in flight share it (gateway.shared_reads)."""
        cached = self.get(owner_id)
        if cached is not None:
            self.hits += 1
            return cached
        return await self.reads.read(owner_id, lambda ticket: self._read(owner_id, ticket))

    async def _read(self, owner_id: int, ticket: int) -> RecipientSnapshot:
        # Read in a session of its own: one holding uncommitted changes could see rows that a
        # rollback then takes back, which no event would report.
        async with self.sessionmaker() as session:
            snapshot = await read_snapshot(session, owner_id)
        self.store(owner_id, snapshot, ticket)
        return snapshot

    def invalidate(self, owner_ids: Iterable[int] = (), group_ids: Iterable[int] = ()) -> None:
        """Forget these people (and the owners of these groups); in-flight reads are not kept."""
        self._generation += 1
        for group_id in group_ids:
            owner_id = self._owner_of_group.get(group_id)
            if owner_id is not None:
                self._drop(owner_id)
            # Not found: no entry holds the group, and the generation stops in-flight reads.
        for owner_id in owner_ids:
            self._drop(owner_id)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._owner_of_group.clear()

    def _drop(self, owner_id: int) -> None:
        entry = self._entries.pop(owner_id, None)
        if entry is not None and entry[0].group_id is not None:
            self._owner_of_group.pop(entry[0].group_id, None)


# --- invalidation: the sessionmaker's session events ------------------------------------------


@dataclass
class _Pending:
    """What a session's transaction changed so far, forgotten when it commits."""

    owners: set[int] = field(default_factory=set)
    groups: set[int] = field(default_factory=set)
    everything: bool = False


_PENDING = "gateway.recipient_cache.pending"
_HOOKS = "_recipient_cache_hooks"


def _pending(session: Session) -> _Pending:
    found = session.info.get(_PENDING)
    if found is None:
        found = session.info[_PENDING] = _Pending()
    return cast("_Pending", found)


def _ints(values: Iterable[Any]) -> set[int]:
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def _attribute_values(obj: object, key: str) -> set[int]:
    """Every value `obj.key` had in this flush (old and new), without loading anything."""
    return _ints(inspect(obj).attrs[key].history.sum())


def _identity(obj: object) -> set[int]:
    identity = inspect(obj).identity
    return _ints(identity) if identity is not None else set()


def _note_instance(session: Session, obj: object, pending: _Pending) -> None:
    if isinstance(obj, UserPreferences | Contact | User):
        key = "id" if isinstance(obj, User) else "user_id"
        owners = _attribute_values(obj, key)
        if not owners and not isinstance(obj, Contact):
            owners = _identity(obj)  # both are keyed by the person's id
        if owners:
            pending.owners |= owners
        else:  # a contact whose owner is not loaded
            pending.everything = True
    elif isinstance(obj, LogGroup):
        owners = _attribute_values(obj, "owner_id")
        pending.owners |= owners
        if not owners:
            pending.groups |= _identity(obj)
    elif isinstance(obj, Topic):
        group = inspect(obj).dict.get("group")
        owners = _attribute_values(group, "owner_id") if isinstance(group, LogGroup) else set()
        group_ids = _attribute_values(obj, "group_id") | _identity_of_group(group)
        for group_id in group_ids:
            # The group, if this session holds it, names its owner without a query.
            held = session.identity_map.get(session.identity_key(LogGroup, group_id))
            owners |= _attribute_values(held, "owner_id") if isinstance(held, LogGroup) else set()
        pending.owners |= owners
        pending.groups |= group_ids
        if not owners and not group_ids:
            pending.everything = True


def _identity_of_group(group: object) -> set[int]:
    return _identity(group) if isinstance(group, LogGroup) else set()


def _written_columns(statement: Update) -> set[str] | None:
    # Not public API: should it ever go, every UPDATE of those tables counts.
    values = getattr(statement, "_values", None)
    if not values:
        return None  # e.g. executemany with per-row parameters: unknown
    return {str(getattr(key, "name", key)) for key in values}


def _equals(clause: Any, column: str) -> set[int] | None:
    """The values `WHERE <column> = value` (alone, or ANDed with more) pins; None: no such."""
    if isinstance(clause, BooleanClauseList) and clause.operator is and_:
        for part in clause.clauses:
            found = _equals(part, column)
            if found is not None:
                return found
        return None
    if (
        isinstance(clause, BinaryExpression)
        and clause.operator is eq
        and getattr(clause.left, "name", None) == column
        and isinstance(clause.right, BindParameter)
    ):
        value = clause.right.effective_value
        if isinstance(value, int) and not isinstance(value, bool):
            return {value}
    return None


def _note_statement(statement: UpdateBase, session: Session) -> None:
    table = getattr(statement.table, "name", None)
    if table is not None and table not in _READ_COLUMNS:
        return  # the outbox's own updates, say: nothing noted, nothing forgotten
    pending = _pending(session)
    if table is not None and isinstance(statement, Update | Delete):
        written = _written_columns(statement) if isinstance(statement, Update) else set()
        read = _READ_COLUMNS[table]
        updates_nothing_read = (
            isinstance(statement, Update)
            and written is not None
            and read is not None
            and not (written & read)
        )
        if updates_nothing_read:
            return  # e.g. a contact's failure streak: no snapshot holds it
        for column, of_groups in _PINS.get(table, ()):
            if written is None or column in written:
                break  # rows may move to someone else: who had them is not in the statement
            pinned = _equals(statement.whereclause, column)
            if pinned is not None:
                (pending.groups if of_groups else pending.owners).update(pinned)
                return
    pending.everything = True


class _Hooks:
    """The session events of one sessionmaker's session class, for every cache bound to it."""

    def __init__(self) -> None:
        self.caches: weakref.WeakSet[RecipientCache] = weakref.WeakSet()

    def after_flush(self, session: Session, _context: UOWTransaction) -> None:
        # Still the pre-flush view here: new/dirty/deleted and attribute histories.
        pending: _Pending | None = None
        for objects in (session.new, session.dirty, session.deleted):
            for obj in objects:
                if isinstance(obj, LogGroup | Topic | Contact | UserPreferences | User):
                    pending = pending or _pending(session)
                    _note_instance(session, obj, pending)

    def do_orm_execute(self, state: ORMExecuteState) -> None:
        if state.is_select:
            return
        statement = state.statement
        if isinstance(statement, Update | Delete | Insert):
            _note_statement(statement, state.session)
        elif (
            isinstance(statement, TextClause)
            and _WRITING_SQL.search(statement.text)
            and _TABLE_NAMES.search(statement.text)
        ):
            _pending(state.session).everything = True

    def after_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a savepoint released: nothing is visible to others until the root commits
        pending = session.info.pop(_PENDING, None)
        if not isinstance(pending, _Pending):
            return
        if not (pending.everything or pending.owners or pending.groups):
            return  # an invalidation would stop in-flight reads for nothing
        for cache in list(self.caches):
            if pending.everything:
                cache.clear()
            else:
                cache.invalidate(pending.owners, pending.groups)

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # rolled back or closed: nothing it noted happened
            session.info.pop(_PENDING, None)


def _hooks_of(sessionmaker: async_sessionmaker[AsyncSession]) -> _Hooks:
    """The hooks of the sessionmaker's session class, installing a class of its own first."""
    base: type[Session] = sessionmaker.kw.get("sync_session_class") or Session
    hooks = base.__dict__.get(_HOOKS)
    if isinstance(hooks, _Hooks):
        return hooks
    hooks = _Hooks()
    session_class = cast("type[Session]", type("RecipientCachedSession", (base,), {_HOOKS: hooks}))
    event.listen(session_class, "after_flush", hooks.after_flush)
    event.listen(session_class, "do_orm_execute", hooks.do_orm_execute)
    event.listen(session_class, "after_commit", hooks.after_commit)
    event.listen(session_class, "after_transaction_end", hooks.after_transaction_end)
    sessionmaker.configure(sync_session_class=session_class)
    return hooks
