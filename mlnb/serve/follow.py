"""Following the registry: a thread that swaps a slot's model when its alias moves.

A :class:`RegistryFollower` reads the registry every ``poll_interval`` seconds (two indexed
SQLite reads). When a served URI points at another version it loads that version (sha256
checked, skops with trusted types only) off the request path and replaces the slot's
:class:`~mlnb.served.ServedModel` in one assignment. A version that fails to load is
logged and counted, and the previous one keeps serving.
"""

import logging
import threading
import time
from typing import Callable

from mlnb.exceptions import MlnbError
from mlnb.served import DEFAULT_MAX_ROWS, ModelSlot, ServedModel, load_served

log = logging.getLogger(__name__)

#: Seconds between two reads of the registry's alias table.
DEFAULT_POLL_INTERVAL = 1.0
#: Seconds before a version that failed to load (a tampered artifact) is tried again.
RETRY_FAILED_LOAD = 30.0


class RegistryFollower(threading.Thread):
    """Polls the registry and swaps a slot's model when its URI points at another version.

    Args:
        store: the store whose registry to read (the thread opens its own connection).
        slots: the slots to keep current.
        interval: seconds between polls.
        on_switch: called with ``(slot, old, new)`` after a swap.
        on_error: called with ``(slot, version, exception)`` when a version fails to load.
        max_rows: passed to :func:`load_served`.
    """

    def __init__(self, store, slots: list[ModelSlot], interval: float = DEFAULT_POLL_INTERVAL,
                 on_switch: Callable | None = None, on_error: Callable | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS):
        super().__init__(name="mlnb-registry-follower", daemon=True)
        self.store = store
        self.slots = slots
        self.interval = interval
        self.on_switch = on_switch
        self.on_error = on_error
        self.max_rows = max_rows
        self.last_check: float | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        from mlnb.registry import Registry

        with Registry(self.store) as registry:
            while not self._stop_event.wait(self.interval):
                self.check(registry)

    def check(self, registry) -> list[tuple[ModelSlot, ServedModel, ServedModel]]:
        """Read every slot's URI once; load and swap the ones that moved. Returns the swaps."""
        import sqlite3

        switched = []
        for slot in self.slots:
            try:
                _, version = registry.resolve(slot.uri)
            except (MlnbError, sqlite3.Error) as exc:
                if not slot.unreadable:  # once per outage, not once per poll
                    log.warning("cannot read %s from the registry (%s); still serving %s", slot.uri, exc,
                                slot.current.label)
                slot.unreadable = True
                continue
            if slot.unreadable:
                log.info("%s is readable in the registry again", slot.uri)
                slot.unreadable = False
            if version == slot.current.version:
                slot.failed_version = None
                continue
            old = slot.current
            if version == slot.failed_version and time.monotonic() - slot.failed_at < RETRY_FAILED_LOAD:
                continue
            try:
                new = load_served(registry, slot.uri, version, self.max_rows)
            except (MlnbError, OSError, sqlite3.Error) as exc:
                if slot.failed_version != version:
                    log.error("%s now points at version %d, which cannot be loaded: %s; still serving %s",
                              slot.uri, version, exc, old.label)
                    if self.on_error:
                        self.on_error(slot, version, exc)
                slot.failed_version, slot.failed_at = version, time.monotonic()
                continue
            slot.current = new  # one assignment: requests already running keep `old`
            slot.failed_version = None
            log.info("%s %s moved: now serving %s (was %s)", slot.role, slot.uri, new.label, old.label)
            if self.on_switch:
                self.on_switch(slot, old, new)
            switched.append((slot, old, new))
        self.last_check = time.time()
        return switched
