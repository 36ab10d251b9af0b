"""A customs authority's work list: the declarations of one jurisdiction, paginated by chain order."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ledger_api.index._models import DeclarationStatus, DeclarationView
from ledger_api.index._queries import _LATEST, ReadModel, _hex32

__all__ = ["JurisdictionPage", "UnknownCursor", "jurisdiction_declarations"]


class UnknownCursor(ValueError):
    """The ``after`` cursor is not a declaration of the jurisdiction (unknown, or another's)."""


@dataclass(frozen=True, kw_only=True)
class JurisdictionPage:
    """One page of a jurisdiction's declarations (current state), oldest submission first."""

    items: tuple[DeclarationView, ...]
    has_more: bool  # another page follows: ask again with ``after`` = the last item's id


def jurisdiction_declarations(
    model: ReadModel,
    jurisdiction: int,
    *,
    statuses: Collection[DeclarationStatus] = (),
    limit: int = 100,
    after: str | bytes | None = None,
) -> JurisdictionPage:
    """Declaration versions whose jurisdiction is agency index ``jurisdiction``, in chain order of
    submission, optionally only those whose *current* status is in ``statuses``.

    ``after`` (a declaration id of this jurisdiction, typically the last item of the previous page)
    starts the page after it; :class:`UnknownCursor` when it is not one. Reads one snapshot.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    db = model._db
    with model._snapshot():
        position = (-1, -1)
        if after is not None:
            row = db.execute(
                "SELECT block_number, log_index FROM declarations WHERE declaration_id = ? AND jurisdiction = ?",
                (_hex32(after), jurisdiction),
            ).fetchone()
            if row is None:
                raise UnknownCursor(f"{_hex32(after)} is not a declaration of jurisdiction {jurisdiction}")
            position = (int(row[0]), int(row[1]))
        wanted = sorted({int(s) for s in statuses})
        status_filter = f"AND status IN ({','.join('?' * len(wanted))})" if wanted else ""
        # The current status is the latest state row (primary key order: declaration, block, log index).
        ids = [
            str(r[0])
            for r in db.execute(
                "SELECT declaration_id FROM (SELECT d.declaration_id, d.block_number, d.log_index, "
                "(SELECT s.status FROM declaration_states s WHERE s.declaration_id = d.declaration_id "
                "ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1) AS status FROM declarations d "
                "WHERE d.jurisdiction = ? AND (d.block_number, d.log_index) > (?, ?)) "
                f"WHERE status IS NOT NULL {status_filter} ORDER BY block_number, log_index LIMIT ?",
                (jurisdiction, *position, *wanted, limit + 1),
            )
        ]
        views = [v for v in (model._declaration(i, _LATEST) for i in ids[:limit]) if v is not None]
    return JurisdictionPage(items=tuple(views), has_more=len(ids) > limit)
