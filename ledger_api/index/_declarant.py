"""A trader's own declarations, paginated by chain order of submission (``GET /v1/declarations/mine``)."""

from __future__ import annotations

from dataclasses import dataclass

from ledger_api.index._jurisdiction import UnknownCursor
from ledger_api.index._models import DeclarationView
from ledger_api.index._queries import _LATEST, ReadModel, _address, _hex32

__all__ = ["DeclarantPage", "declarant_declarations"]


@dataclass(frozen=True, kw_only=True)
class DeclarantPage:
    """One page of a declarant's declaration versions (current state), oldest submission first."""

    items: tuple[DeclarationView, ...]
    has_more: bool  # another page follows: ask again with ``after`` = the last item's id


def declarant_declarations(
    model: ReadModel, declarant: str, *, limit: int = 100, after: str | bytes | None = None
) -> DeclarantPage:
    """Declaration versions submitted by ``declarant`` in chain order; ``after`` (one of *its*
    declaration ids) starts the page after it, else :class:`UnknownCursor`. Reads one snapshot."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    owner = _address(declarant)
    db = model._db
    with model._snapshot():
        position = (-1, -1)
        if after is not None:
            row = db.execute(
                "SELECT block_number, log_index FROM declarations WHERE declaration_id = ? AND declarant = ?",
                (_hex32(after), owner),
            ).fetchone()
            if row is None:
                raise UnknownCursor(f"{_hex32(after)} is not a declaration of {owner}")
            position = (int(row[0]), int(row[1]))
        ids = [
            str(r[0])
            for r in db.execute(
                "SELECT declaration_id FROM declarations WHERE declarant = ? AND (block_number, log_index) > (?, ?) "
                "ORDER BY block_number, log_index LIMIT ?",
                (owner, *position, limit + 1),
            )
        ]
        views = [v for v in (model._declaration(i, _LATEST) for i in ids[:limit]) if v is not None]
    return DeclarantPage(items=tuple(views), has_more=len(ids) > limit)
