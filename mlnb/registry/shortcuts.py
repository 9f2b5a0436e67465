"""Module-level shortcuts: one call, one :class:`~mlnb.registry.Registry` opened and closed.

``mlnb.registry.load("weather@production")`` is ``Registry(None).load(...)`` with the
registry closed afterwards; every shortcut takes the store as ``store=``.
"""

from __future__ import annotations

from mlnb.registry.entries import AliasEvent, ModelVersion
from mlnb.registry.names import DEFAULT_ALIAS
from mlnb.registry.registry import Registry


def _with_registry(store, method: str, *args, **kwargs):
    with Registry(store) as registry:
        return getattr(registry, method)(*args, **kwargs)


def register(run_id: str, name: str, *, store=None, tags=None, caused_by=None) -> ModelVersion:
    """Create the next version of ``name`` from a training run; see :meth:`Registry.register`."""
    return _with_registry(store, "register", run_id, name, tags=tags, caused_by=caused_by)


def get(uri: str, *, store=None) -> ModelVersion:
    """The version a URI points at; see :meth:`Registry.get`."""
    return _with_registry(store, "get", uri)


def set_alias(name, alias, version, reason=None, *, store=None, caused_by=None) -> AliasEvent | None:
    """Point ``name@alias`` at ``version``; see :meth:`Registry.set_alias`."""
    return _with_registry(store, "set_alias", name, alias, version, reason, caused_by)


def promote(name, version, alias=DEFAULT_ALIAS, reason=None, *, store=None, caused_by=None) -> AliasEvent | None:
    """Point ``name@alias`` (production) at ``version``; see :meth:`Registry.promote`."""
    return _with_registry(store, "promote", name, version, alias, reason, caused_by)


def rollback(name, alias=DEFAULT_ALIAS, reason=None, *, store=None, caused_by=None) -> AliasEvent:
    """Undo the latest move of ``name@alias``; see :meth:`Registry.rollback`."""
    return _with_registry(store, "rollback", name, alias, reason, caused_by)


def history(name, alias=None, *, store=None) -> list[AliasEvent]:
    """The alias moves of a model, oldest first; see :meth:`Registry.history`."""
    return _with_registry(store, "history", name, alias)


def load(uri: str, *, store=None):
    """Load a registered model, verified and with trusted types only; see :meth:`Registry.load`."""
    return _with_registry(store, "load", uri)
