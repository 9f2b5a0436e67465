"""The model registry: named, numbered model versions and movable aliases, in the store's SQLite.

A **version** is made from a succeeded training run (:meth:`Registry.register`) and never
changes: it references the run's model artifact by path and sha256 and copies the lineage a
reviewer needs from the run record (metrics, hyperparameters, features, target, the
fingerprints of the data the run read, the template and git commit, the scikit-learn
version). Versions are numbered 1, 2, 3… per model name inside one ``BEGIN IMMEDIATE``
transaction, so concurrent registrations neither lose nor repeat a number. Tags can be added
to a version later; they are appended, the newest value of a key wins.

The artifact is **referenced, not copied**: runs are immutable and read-only, so the run's
``artifacts/`` is already the safest place for the file, the registry row stays one hop from
the record that made it, and there is no second copy to verify or to drift. Loading checks
the file's sha256 against the registry row first; a run that was removed or altered makes
its versions unloadable (:class:`~mlnb.exceptions.ArtifactTampered`), never silently wrong.

An **alias** (``production``, ``champion``, any name) points at one version of a model.
Every move is appended to ``alias_events`` (time, from, to, action, reason, and what caused
it: a run id, a pipeline run id, or ``cli:<user>``); the ``model_aliases`` table holds the
current targets and is updated in the same transaction. Rollback is *undo*: it reverts the
most recent move of the alias (a set or promote) that has not been rolled back yet, moving
the alias to the version that move came from. Repeated rollbacks therefore walk back through
earlier deployments instead of flip-flopping between the last two, and stop with an error
at the alias's first assignment. Promoting the version an alias already points at is not a
move and is not recorded. SQLite triggers refuse UPDATE and DELETE on versions, tags and the
history, so the history can only grow.

URIs name models everywhere: ``NAME@ALIAS`` or ``NAME/VERSION`` (``NAME/latest`` for the
highest version). Names and aliases match ``[a-z0-9][a-z0-9._-]*``.

The package's modules: :mod:`~mlnb.registry.names` (names and URIs),
:mod:`~mlnb.registry.entries` (versions and alias events), :mod:`~mlnb.registry.schema`
(the SQLite tables), :mod:`~mlnb.registry.registry` (:class:`Registry`) and
:mod:`~mlnb.registry.shortcuts` (``mlnb.registry.load(uri)`` and friends). Loading a model
goes to :mod:`mlnb.model.persist`.

This package imports neither scikit-learn nor skops; :func:`load` imports them when called.
"""

from mlnb.registry.entries import ACTIONS, AliasEvent, ModelVersion, default_actor, replay
from mlnb.registry.names import DEFAULT_ALIAS, MAX_NAME, NAME, ModelRef, parse_uri, parse_version, validate_name
from mlnb.registry.registry import Registry
from mlnb.registry.schema import SCHEMA
from mlnb.registry.shortcuts import get, history, load, promote, register, rollback, set_alias

__all__ = [
    "ACTIONS",
    "DEFAULT_ALIAS",
    "MAX_NAME",
    "NAME",
    "SCHEMA",
    "AliasEvent",
    "ModelRef",
    "ModelVersion",
    "Registry",
    "default_actor",
    "get",
    "history",
    "load",
    "parse_uri",
    "parse_version",
    "promote",
    "register",
    "replay",
    "rollback",
    "set_alias",
    "validate_name",
]
