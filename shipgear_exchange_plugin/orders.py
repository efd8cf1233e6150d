"""Queries behind the orders grid, orders.json, the shipment panel and the export.

Always scoped by ``company_id``: no function here can return another company's row.

Every grid column sorts, both ways, with a stable tie-break, and pages by keyset: the
cursor carries the last row's sort values, so page 10,000 costs what page 1 does, and an
index ``(company_id, <sort columns>, id)`` stands behind each sort (migration 0004). The
one column with blanks (last attempt) lists them last either way (see :func:`segments`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from .models import AuditEvent, StoreAccount, UTCDateTime, Writeback, utcnow
from .writeback import FEED_UNKNOWN

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: Counting stops here: beyond it the grid says "10,000+" instead of scanning every row.
COUNT_BOUND = 10_000
#: Every integer column of the table (ids, counts) is a 32-bit INTEGER on PostgreSQL: a
#: value outside this range is an error there, not a row that does not exist.
MAX_INT = 2**31 - 1

#: Sort key -> the columns it orders by (the row id is always the last tie-break).
SORTS: dict[str, tuple[sa.Column, ...]] = {
    "order": (Writeback.order_sort,),  # numbers as numbers: see models.order_sort_key
    "account": (Writeback.account_id,),
    "ship_date": (Writeback.ship_date,),
    "carrier": (Writeback.carrier, Writeback.service),
    "tracking": (Writeback.tracking_number,),
    "qty": (Writeback.shipped_quantity,),
    "status": (Writeback.status, Writeback.ship_date),
    "errors": (Writeback.error_count,),
    "last_attempt": (Writeback.last_attempt_at,),
}
DEFAULT_SORT = "-ship_date"
#: The one nullable sort column: never-attempted rows, listed last both ways.
NULLABLE = {"last_attempt"}


class CursorError(ValueError):
    """A cursor that was not made by this query (tampered, stale or from another sort)."""


@dataclass(frozen=True)
class OrderFilter:
    statuses: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    timezone: str = "UTC"
    accounts: tuple[int, ...] = field(default=())
    #: Matches the start of an order id or a tracking number (case-insensitive).
    search: str = ""
    sort: str = DEFAULT_SORT

    @property
    def sort_key(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


def parse_sort(raw: str | None) -> str:
    """A valid sort (``key`` or ``-key``), or ValueError naming the valid keys."""
    value = (raw or DEFAULT_SORT).strip()
    if value.lstrip("-") not in SORTS or value.count("-") > 1 or "-" in value[1:]:
        raise ValueError(f"Unknown sort {value[:40]!r}; sort by one of: "
                         f"{', '.join(SORTS)} (prefix - for descending).")
    return value


def valid_id(value: int) -> bool:
    """Whether ``value`` can be a row id at all (ids outside it match no row)."""
    return 0 < value <= MAX_INT


def _day_start_utc(day: dt.date, tz: ZoneInfo, days_later: int = 0) -> dt.datetime | None:
    """Start of ``day`` (+ ``days_later``) in ``tz``, in UTC; None when that instant is
    outside what a datetime holds (before 0001-01-01 or after 9999-12-31 UTC), so before
    or after every stored time."""
    try:
        return dt.datetime.combine(day + dt.timedelta(days=days_later), dt.time.min,
                                   tzinfo=tz).astimezone(dt.UTC)
    except OverflowError:
        return None


def _where(company_id: int, flt: OrderFilter) -> list:
    tz = ZoneInfo(flt.timezone)
    conditions = [Writeback.company_id == company_id]
    if flt.statuses:
        conditions.append(Writeback.status.in_(flt.statuses))
    if flt.accounts:
        conditions.append(Writeback.account_id.in_(flt.accounts))
    # A bound out of datetime's range excludes nothing (every row is within it).
    start = _day_start_utc(flt.date_from, tz) if flt.date_from is not None else None
    if start is not None:
        conditions.append(Writeback.ship_date >= start)
    end = _day_start_utc(flt.date_to, tz, days_later=1) if flt.date_to is not None else None
    if end is not None:
        conditions.append(Writeback.ship_date < end)
    if flt.search:
        text = flt.search.strip()
        conditions.append(sa.or_(
            Writeback.order_id.startswith(text, autoescape=True),
            Writeback.tracking_number.startswith(text.upper(), autoescape=True),
            Writeback.tracking_number.startswith(text, autoescape=True)))
    return conditions


def _ordering(flt: OrderFilter):
    columns = (*SORTS[flt.sort_key], Writeback.id)
    return [c.desc() if flt.descending else c.asc() for c in columns]


def _matching(company_id: int, flt: OrderFilter) -> sa.Select:
    """The company's write-backs that ``flt`` lets through, in no order yet."""
    return sa.select(Writeback).where(*_where(company_id, flt))


def filtered(company_id: int, flt: OrderFilter) -> sa.Select:
    """The grid's rows in the grid's order as ONE statement, for the exports: a file is
    read at one moment, so a shipment attempted while it streams is neither missed nor
    listed twice (read as two statements, it could fall between them). Blanks last is
    spelled ``NULLS LAST`` here; for the nullable sort PostgreSQL sorts the matching rows
    (spilling to disk if it must) instead of reading an index in order."""
    order = _ordering(flt)
    if flt.sort_key in NULLABLE:
        order[0] = order[0].nulls_last()
    return _matching(company_id, flt).order_by(*order)


def segments(company_id: int, flt: OrderFilter) -> list[sa.Select]:
    """The grid's query: the company's write-backs matching ``flt``, in the grid's order,
    as the index scans that give that order one after the other. Dates are calendar days
    in the company's time zone; stored times are UTC. The grid pages with these (each
    page is its own read anyway); the exports read :func:`filtered`.

    One scan for every sort but the nullable one, which is two: the attempted rows, then
    the never-attempted ones. Blanks go last whichever way the column is sorted, as in a
    spreadsheet, and on SQLite as on PostgreSQL. One ``ORDER BY ... NULLS LAST`` would say
    the same, but read backwards PostgreSQL's index has the NULLs first, so descending it
    would sort the whole table."""
    query = _matching(company_id, flt).order_by(*_ordering(flt))
    if flt.sort_key not in NULLABLE:
        return [query]
    column = SORTS[flt.sort_key][0]
    return [query.where(column.is_not(None)), query.where(column.is_(None))]


def _after(flt: OrderFilter, values: list):
    """Rows strictly after the cursor's row within its segment, as ONE row-value
    comparison ``(sort columns..., id) > (cursor values...)`` (``<`` descending): both
    PostgreSQL and SQLite start the index scan at the cursor with it, where the same test
    spelled out with OR only filters a scan that starts at the company's first row. In
    the never-attempted segment every sort value is NULL, and the id alone orders it."""
    columns = (*SORTS[flt.sort_key], Writeback.id)
    if _segment_of(flt, values) == 1:
        columns, values = (Writeback.id,), values[1:]
    left = sa.tuple_(*columns)
    right = sa.tuple_(*(sa.literal(v, c.type) for c, v in zip(columns, values, strict=True)))
    return left < right if flt.descending else left > right


def _segment_of(flt: OrderFilter, values: list) -> int:
    """Which of :func:`segments` a cursor's row is in."""
    return 1 if flt.sort_key in NULLABLE and values[0] is None else 0


def _cursor_values(flt: OrderFilter, row: Writeback) -> list:
    values = [getattr(row, c.key) for c in SORTS[flt.sort_key]] + [row.id]
    return [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]


def _decode_values(flt: OrderFilter, raw: list) -> list:
    columns = (*SORTS[flt.sort_key], Writeback.id)
    if not isinstance(raw, list) or len(raw) != len(columns):
        raise CursorError("This page link does not fit the current sort; start again.")
    values = []
    for column, value in zip(columns, raw, strict=True):
        python_type = _python_type(column)
        if value is None and column.nullable:
            values.append(None)
        elif python_type is dt.datetime and isinstance(value, str):
            try:  # cursors carry stored times: aware, and within range once in UTC
                moment = dt.datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError("naive")
                values.append(moment.astimezone(dt.UTC))
            except (ValueError, OverflowError):
                raise CursorError("This page link is damaged; start again.") from None
        elif _plain_value_ok(python_type, value):
            values.append(value)
        else:
            raise CursorError("This page link is damaged; start again.")
    return values


def _python_type(column) -> type:
    if isinstance(column.type, (UTCDateTime, sa.DateTime)):
        return dt.datetime
    if isinstance(column.type, sa.Integer):
        return int
    return str


def _plain_value_ok(python_type: type, value) -> bool:
    """Whether a cursor value is one a row could hold (so the database can compare it)."""
    if python_type is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT
    return (python_type is str and isinstance(value, str) and len(value) <= 200
            and "\x00" not in value)


class CursorCodec:
    """Cursors are signed (the app's secret), so a tampered one is refused, not run. The
    page's own links also carry how many rows came before the page, so that it can say
    "Showing 51-100"; signed, that number is as trustworthy as the rest."""

    def __init__(self, secret: str) -> None:
        from itsdangerous import URLSafeSerializer

        self.serializer = URLSafeSerializer(secret, salt="sgx-orders-cursor")

    def encode(self, flt: OrderFilter, row: Writeback, rows_before: int | None = None) -> str:
        """A cursor to the rows after ``row``; with ``rows_before``, the number of rows up
        to and including ``row``."""
        payload = [flt.sort, _cursor_values(flt, row)]
        if rows_before is not None:
            payload.append(rows_before)
        return self.serializer.dumps(payload)

    def decode(self, flt: OrderFilter, token: str) -> list:
        return self.decode_with_position(flt, token)[0]

    def decode_with_position(self, flt: OrderFilter, token: str) -> tuple[list, int | None]:
        """The cursor's values, and how many rows came before its page (None: unknown)."""
        from itsdangerous import BadSignature

        if len(token) > 2000:
            raise CursorError("This page link is too long; start again.")
        try:
            sort, values, *rest = self.serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise CursorError("This page link is damaged; start again.") from None
        if sort != flt.sort:
            raise CursorError("This page link belongs to another sort; start again.")
        before = rest[0] if rest and type(rest[0]) is int and rest[0] >= 0 else None
        return _decode_values(flt, values), before


def page(session: Session, company_id: int, flt: OrderFilter, limit: int = PAGE_SIZE,
         after: list | None = None) -> tuple[list[Writeback], bool]:
    """One page of rows after the cursor values (or the first page); and whether more
    rows follow."""
    queries = segments(company_id, flt)
    if after is not None:
        queries = queries[_segment_of(flt, after):]
        queries[0] = queries[0].where(_after(flt, after))
    rows: list[Writeback] = []
    for query in queries:  # the next segment only when this one ran out
        rows += session.execute(query.limit(limit + 1 - len(rows))).scalars().all()
        if len(rows) > limit:
            break
    return rows[:limit], len(rows) > limit


def rows_before(session: Session, company_id: int, flt: OrderFilter, values: list,
                count: int) -> list[Writeback]:
    """Up to ``count`` rows just before the cursor values' row in the grid's order,
    nearest first: the same index scans as :func:`page`, read the other way. The grid's
    Previous page link starts after the ``count``-th of them (a page size plus one)."""
    reverse = replace(flt, sort=flt.sort_key if flt.descending else f"-{flt.sort}")
    segment = _segment_of(flt, values)
    queries = segments(company_id, reverse)[:segment + 1][::-1]  # back to the first segment
    queries[0] = queries[0].where(_after(reverse, values))
    rows: list[Writeback] = []
    for query in queries:
        rows += session.execute(query.limit(count - len(rows))).scalars().all()
        if len(rows) >= count:
            break
    return rows


def cursor_values(flt: OrderFilter, row: Writeback) -> list:
    """The values a cursor at ``row`` carries, as :func:`page` and :func:`rows_before`
    take them."""
    return _decode_values(flt, _cursor_values(flt, row))


def count_bounded(session: Session, company_id: int, flt: OrderFilter,
                  bound: int = COUNT_BOUND) -> int:
    """Matching rows, exact up to ``bound``; ``bound`` itself means "bound or more"."""
    limited = sa.select(Writeback.id).where(*_where(company_id, flt)).limit(bound).subquery()
    return session.execute(sa.select(sa.func.count()).select_from(limited)).scalar_one()


def get(session: Session, company_id: int, writeback_id: int) -> Writeback | None:
    """One write-back with its attempts, or None if it is not this company's."""
    if not valid_id(writeback_id):
        return None
    return session.execute(
        sa.select(Writeback)
        .where(Writeback.id == writeback_id, Writeback.company_id == company_id)
        .options(selectinload(Writeback.attempts))
    ).scalar_one_or_none()


def of_accounts_turned_off(session: Session, company_id: int, ids: list[int]) -> list[int]:
    """Which of these write-backs belong to a disabled store account (they wait)."""
    if not ids:
        return []
    return list(session.execute(
        sa.select(Writeback.id).join(StoreAccount, StoreAccount.id == Writeback.account_id)
        .where(Writeback.company_id == company_id, Writeback.id.in_(ids),
               StoreAccount.enabled.is_(False))).scalars())


#: Manual actions on one write-back that its shipment panel lists (B8).
MANUAL_ACTIONS = ("writeback.retry_now", "writeback.mark_confirmed")


def manual_actions(session: Session, company_id: int, writeback_id: int,
                   limit: int = 20) -> list[AuditEvent]:
    """Who retried or confirmed this write-back by hand, and when: the newest ``limit``,
    oldest first."""
    events = session.execute(sa.select(AuditEvent).where(
        AuditEvent.company_id == company_id, AuditEvent.target == f"writeback:{writeback_id}",
        AuditEvent.action.in_(MANUAL_ACTIONS))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)).scalars()
    return list(events)[::-1]


def waiting_for_feed(session: Session, company_id: int,
                     ids: list[int]) -> dict[int, dt.datetime]:
    """Of these rows, those that wait for an Amazon feed that may still be processing
    (``FEED_UNKNOWN``, see WritebackService.retry_now), with when they go on."""
    if not ids:
        return {}
    return dict(session.execute(sa.select(Writeback.id, Writeback.next_attempt_at).where(
        Writeback.company_id == company_id, Writeback.id.in_(ids),
        Writeback.feed_id == FEED_UNKNOWN, Writeback.next_attempt_at > utcnow())).all())


def packages_of_order(session: Session, company_id: int, row: Writeback) -> list[Writeback]:
    """All packages of the same order on the same account (B12)."""
    return session.execute(
        sa.select(Writeback)
        .where(Writeback.company_id == company_id, Writeback.account_id == row.account_id,
               Writeback.order_id == row.order_id)
        .order_by(Writeback.package_key)
    ).scalars().all()

