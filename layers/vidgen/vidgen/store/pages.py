"""Page keys: a query's LastEvaluatedKey, which the API hands out (encoded) as a cursor and takes back."""

from __future__ import annotations

from typing import Any, TypeGuard

from vidgen.store.table import user_key

# A query's LastEvaluatedKey / ExclusiveStartKey.
PageKey = dict[str, Any]


def is_table_key(key: object) -> TypeGuard[PageKey]:
    """Whether a page key read back from an operator's cursor is a key of the table itself (a scan's)."""
    return isinstance(key, dict) and set(key) == {'PK', 'SK'} and all(isinstance(v, str) for v in key.values())


def page_key_belongs_to(key: object, owner: str, owner_fields: tuple[str, ...]) -> TypeGuard[PageKey]:
    """Whether a page key read back from a client's cursor is the owner's: a job- or storyboard-index key names
    its owner in `owner_fields`; a ledger key's partition is the owner's."""
    if not isinstance(key, dict) or not all(isinstance(v, str) for v in key.values()):
        return False
    pk = key.get('PK', '')
    return all(key.get(f) == owner for f in owner_fields) and (
        pk == user_key(owner)['PK'] or pk.startswith(('JOB#', 'STORYBOARD#')))
