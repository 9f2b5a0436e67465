"""Every error mlnb raises.

All errors derive from :class:`MlnbError` and, where one fits, from the matching built-in
exception, so callers can catch either. Errors carry structured fields so the CLI and the
run record can report them without parsing strings. The CLI maps them to exit codes with
:attr:`MlnbError.exit_code`.
"""

from __future__ import annotations

#: Exit codes shared by every command (documented in ``mlnb --help``).
EXIT_OK = 0
EXIT_FAILED = 1  # a run or a check failed; its record exists
EXIT_USAGE = 2  # bad usage or input; nothing was written
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; nothing was written


class MlnbError(Exception):
    """Root of every mlnb error.

    Attributes:
        parameters: the names of the function parameters the message is about; the message
            quotes each as ```target```, which the CLI says as its option (``--target``).
    """

    exit_code = EXIT_USAGE

    def __init__(self, *args, parameters: tuple[str, ...] = ()):
        super().__init__(*args)
        self.parameters = tuple(parameters)


# -- input and usage -------------------------------------------------------------------------


class TemplateNotFound(MlnbError, FileNotFoundError):
    """A template name or path that does not resolve to a notebook."""


class TemplateError(MlnbError, ValueError):
    """A template that cannot be read (malformed JSON, bad parameters cell)."""


class ParameterError(MlnbError, ValueError):
    """An unknown parameter, a value of the wrong type, or a value that is not JSON."""

    def __init__(self, message: str, name: str | None = None, parameters: tuple[str, ...] = ()):
        super().__init__(message, parameters=parameters)
        self.name = name  # a template's parameter: the CLI does not reword it


class StoreError(MlnbError, OSError):
    """A store path that is not a directory or not writable."""


class RunNotFound(MlnbError, KeyError):
    """A run id that is not in the store."""

    def __init__(self, run_id: str, store: str | None = None):
        where = f" in store {store}" if store else ""
        super().__init__(f"run {run_id!r} not found{where}; list runs with 'mlnb runs list'")
        self.run_id = run_id

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class RecordError(MlnbError, ValueError):
    """A record.json that is not JSON, or does not follow a known schema version."""


class ReproduceError(MlnbError, ValueError):
    """A run cannot be reproduced: its template or an input changed since it ran."""


class DataError(MlnbError, ValueError):
    """A data file that cannot be read as a table (missing, empty, not CSV/Parquet)."""


class SchemaDefinitionError(MlnbError, ValueError):
    """A validation schema (YAML or dict) that is malformed."""


class DriftError(MlnbError, ValueError):
    """Bad input to drift analysis: empty data, no common columns, unknown method..."""


class RegistryError(MlnbError, ValueError):
    """A bad model name, an unknown version or alias, or a run that cannot be registered."""


class ModelNotFound(RegistryError, KeyError):
    """A model URI that does not resolve to a registered version."""

    def __str__(self) -> str:
        return self.args[0]


class ArtifactTampered(MlnbError, ValueError):
    """A model artifact whose sha256 no longer matches the registry."""


class UntrustedModel(MlnbError, ValueError):
    """A skops file holding a type outside the trusted list, or not a skops file at all.

    Attributes:
        types: the offending types, fully qualified.
    """

    def __init__(self, message: str, types: list[str] | None = None):
        super().__init__(message)
        self.types = list(types or [])


class BackendError(MlnbError, ConnectionError):
    """A Dask scheduler that cannot be reached, or workers that cannot run a sweep."""


class ConfigError(MlnbError, ValueError):
    """An ``mlnb.yaml`` that is missing a key or has a value that is not allowed."""


# -- execution -------------------------------------------------------------------------------


class RunFailed(MlnbError):
    """A run that executed and failed; its record exists in the store."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, run_id: str, error: dict | None = None):
        super().__init__(message)
        self.run_id = run_id
        self.error = error or {}


class ValidationFailed(MlnbError, AssertionError):
    """Data that failed validation; raised by the ``validate`` template to fail its run.

    Attributes:
        failed: ``[(check, column), ...]`` of the failed checks.
        n_checks: how many checks ran.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str, failed: list[tuple[str, str | None]], n_checks: int):
        super().__init__(message)
        self.failed = failed
        self.n_checks = n_checks


class Interrupted(MlnbError, KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM; nothing was written."""

    exit_code = EXIT_INTERRUPTED


class RunDiscarded(MlnbError):
    """A run its caller decided not to keep once it had executed (a pipeline step started
    ahead of a validation that then rejected the batch); nothing was written."""


class SweepInterrupted(Interrupted):
    """A sweep stopped by Ctrl-C or SIGTERM: pending runs cancelled, committed ones kept.

    Attributes:
        recorded: ids of the runs of the sweep that were committed.
    """

    def __init__(self, message: str, recorded: list[str]):
        super().__init__(message)
        self.recorded = recorded


class PipelineStepFailed(MlnbError):
    """A child run of the pipeline failed for a reason other than the data (a bug, a crash)."""

    exit_code = EXIT_FAILED
