"""The papermill engine mlnb executes notebooks with: papermill's nbclient engine, but the
notebook is written at most once a second while it runs (and always when it ends), not at
every cell's start and end.

papermill writes the whole notebook (validated against nbformat's schema, then serialised)
before and after every cell, so that someone can watch it fill in. A run's notebook sits in
a private staging directory and only its final state — written when execution ends,
whatever ended it (an error, a dead kernel, a timeout) — goes into the record; the writes
before that took about 0.1 s of a short notebook's run (a pipeline runs seven, four of them
one after the other). The first cell's start is still written at once, and a long
notebook's progress at most a second late.

Registered as ``papermill_engines["mlnb"]`` on first use: ``engine_name=register()``.
"""

from __future__ import annotations

import functools
import time

ENGINE = "mlnb"
#: seconds between two writes of a running notebook
SAVE_EVERY_S = 1.0


@functools.lru_cache(maxsize=1)
def register() -> str:
    """Register the engine with papermill (once); return its name."""
    from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

    class SavesThrottled(NotebookExecutionManager):
        """Writes the notebook when it starts, at most once a second while it runs, and when
        execution ends."""

        done = False
        saved = None  # time.monotonic() of the last write

        def save(self, **kwargs):
            now = time.monotonic()
            if self.done or self.saved is None or now - self.saved >= SAVE_EVERY_S:
                self.saved = now
                super().save(**kwargs)

        def notebook_complete(self, **kwargs):
            self.done = True
            super().notebook_complete(**kwargs)

    class MlnbEngine(NBClientEngine):
        @classmethod
        def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                             autosave_cell_every=30, **kwargs):
            # papermill's Engine.execute_notebook, with the manager above
            nb_man = SavesThrottled(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                  autosave_cell_every=autosave_cell_every)
            nb_man.notebook_start()
            try:
                cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
            finally:
                nb_man.cleanup_pbar()
                nb_man.notebook_complete()
            return nb_man.nb

    papermill_engines.register(ENGINE, MlnbEngine)
    return ENGINE
