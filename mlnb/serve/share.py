"""Sharing a server's logs with the other hosts of a team store.

A server appends its prediction and shadow logs to files in this host's cache of the store
(one ``write`` per request, as with a local store). A :class:`LogSharer` thread uploads the
files this process writes to the object store: every ``interval`` seconds, as soon as the
prediction log rotates a file, and once more when the server stops. Readers on other hosts
therefore see a served request at most about ``interval`` seconds after it was answered
(plus the time of one upload). A request never waits for an upload, and an object store
that cannot be reached is logged, never an error of the server; the next round tries again.

A local store needs none of this: the server starts no sharer for one.
"""

import logging
import threading
from pathlib import Path
from typing import Callable

from mlnb.exceptions import StoreError

log = logging.getLogger(__name__)

#: Seconds between two uploads of a server's logs to a team store.
DEFAULT_SHARE_INTERVAL = 30.0


class LogSharer(threading.Thread):
    """Uploads the log files a server process writes, through its store's :meth:`share_logs`.

    Args:
        store: the team store whose cache the logs are in.
        sources: callables, each returning the files to upload (in the order to upload them).
        interval: seconds between two uploads.
    """

    def __init__(self, store, sources: list[Callable[[], list[Path]]], interval: float = DEFAULT_SHARE_INTERVAL):
        super().__init__(name="mlnb-log-sharer", daemon=True)
        self.store = store
        self.sources = sources
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        """Upload now (a file was rotated), without waiting for the interval."""
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stopping.is_set():
                self.share()

    def share(self) -> bool:
        """Upload what changed since the last upload; False (and logged) when the store refused."""
        paths = [path for source in self.sources for path in source()]
        try:
            self.store.share_logs(paths)
        except (StoreError, OSError) as exc:
            log.warning("cannot upload the logs to the team store (tried again in %.3g s): %s", self.interval, exc)
            return False
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """End the thread, then upload what is left; False when that upload failed."""
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        return self.share()
