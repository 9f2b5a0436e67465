"""What the registry's rows are: model versions and the append-only history of alias moves.

:class:`ModelVersion` is one registered version with its lineage, :class:`AliasEvent` one
move of an alias; both are decoded from rows of the columns listed here. :func:`replay`
rebuilds the alias table from a history, and :func:`default_actor` is what an event
records as its cause when no run caused it.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone

ACTIONS = ("set", "promote", "rollback")

_VERSION_COLUMNS = (
    "name, version, run_id, artifact, sha256, bytes, task, estimator, target, features, "
    "hyperparameters, metrics, data, code, sklearn_version, created, created_by"
)
_EVENT_COLUMNS = "seq, name, alias, action, from_version, to_version, undoes, reason, caused_by, at"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_actor(prefix: str = "api") -> str:
    """``<prefix>:<user>``, what an event records when no run caused it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{prefix}:{user}"



@dataclass
class ModelVersion:
    """One registered version and its lineage (what :meth:`Registry.get` returns)."""

    name: str
    version: int
    run_id: str
    artifact: str  # path relative to the run's artifacts/
    sha256: str
    bytes: int
    task: str | None
    estimator: str | None
    target: str | None
    features: list[str]
    hyperparameters: dict
    metrics: dict
    data: list[dict]  # the run's inputs: parameter, path, sha256, bytes
    code: dict  # template name and sha256, record digest, git commit
    sklearn_version: str | None
    created: str
    created_by: str
    tags: dict = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict:
        """Plain JSON data (what ``mlnb models show --json`` prints).

        A shallow copy: the nested values are this object's own (decoded from JSON).
        """
        return {"uri": self.uri, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias, as recorded in the append-only history."""

    seq: int
    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int
    undoes: int | None
    reason: str | None
    caused_by: str
    at: str

    def to_dict(self) -> dict:
        return asdict(self)


def _version_from_row(row: tuple) -> ModelVersion:
    (name, version, run_id, artifact, sha256, size, task, estimator, target, features,
     hyperparameters, metrics, data, code, sklearn_version, created, created_by) = row
    return ModelVersion(
        name=name, version=version, run_id=run_id, artifact=artifact, sha256=sha256, bytes=size,
        task=task, estimator=estimator, target=target, features=json.loads(features),
        hyperparameters=json.loads(hyperparameters), metrics=json.loads(metrics),
        data=json.loads(data), code=json.loads(code), sklearn_version=sklearn_version,
        created=created, created_by=created_by,
    )


def _event_from_row(row: tuple) -> AliasEvent:
    return AliasEvent(*row)



def replay(events: list[AliasEvent]) -> dict[tuple[str, str], int]:
    """The alias table that a history produces: ``{(name, alias): version}``."""
    table: dict[tuple[str, str], int] = {}
    for event in sorted(events, key=lambda e: e.seq):
        table[(event.name, event.alias)] = event.to_version
    return table
