"""Where run records live: :class:`Store` and its two implementations.

``Store(location)`` is a :class:`~mlnb.store.local.LocalStore` for a directory (the
embedded default: files and a SQLite index) and a :class:`~mlnb.store.team.TeamStore` for
an object-store URL (files through fsspec, index and registry in PostgreSQL).
"""

from mlnb.store.base import (
    DATA_DIR,
    PREDICTIONS_DIR,
    RUN_ID,
    SHADOW_DIR,
    STAGING,
    Run,
    Store,
    as_store,
    index_insert,
    new_run_id,
)
from mlnb.store.local import DATABASE, LocalStore

__all__ = [
    "DATABASE", "DATA_DIR", "PREDICTIONS_DIR", "RUN_ID", "SHADOW_DIR", "STAGING", "LocalStore", "Run", "Store",
    "as_store", "index_insert", "new_run_id",
]
