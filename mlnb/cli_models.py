"""``mlnb models``: list, show, history, register, promote, rollback, tag.

Registered on the root command by ``mlnb.cli`` (``main.add_command(models)``). Commands
parse arguments, call :mod:`mlnb.registry` and print; errors are MlnbErrors, which the
group turns into one ``mlnb: error: ...`` line and exit code 2. Only click and mlnb.cli_common are
imported here at module level, so ``mlnb models list`` starts fast.
"""

from __future__ import annotations

import json
from typing import Any

import click

from mlnb.cli_common import EXIT_CODES, MlnbGroup, json_option, store_option
from mlnb.cli_common import echo_json as _echo_json

alias_option = click.option(
    "--alias", default="production", show_default=True, metavar="ALIAS", help="The alias to move."
)
reason_option = click.option("--reason", default=None, metavar="TEXT", help="Why (kept in the history).")
caused_by_option = click.option(
    "--caused-by", default=None, metavar="TEXT",
    help="What caused the change, kept in the history (default: cli:<user>; pipelines pass their run id).",
)


def _registry(store_path: str | None):
    from mlnb.registry import Registry

    return Registry(store_path)


def _actor(caused_by: str | None) -> str:
    from mlnb.registry import default_actor

    return caused_by or default_actor("cli")


def _echo_json_array(items: list[dict]) -> None:
    """A JSON array with one compact object per line (sorted keys).

    Listings can hold thousands of versions or moves: the C encoder on each item is several
    times faster than ``json.dumps(indent=2)``, whose pure-Python encoder alone took longer
    than the whole command's budget for 1,000 versions, and one line per item stays readable
    and greppable.
    """
    if not items:
        click.echo("[]")
        return
    lines = ",\n".join("  " + json.dumps(item, sort_keys=True, ensure_ascii=False) for item in items)
    click.echo(f"[\n{lines}\n]")


def _metrics_text(metrics: dict, limit: int | None = None) -> str:
    items = list(metrics.items())[:limit] if limit else metrics.items()
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


@click.group(cls=MlnbGroup, epilog=EXIT_CODES)
def models():
    """Registered model versions, their lineage, and aliases (production, champion...).

    Models are named by URI: NAME@ALIAS (weather@production) or NAME/VERSION (weather/3).
    """


@models.command("list")
@click.argument("name", required=False)
@store_option
@json_option
def models_list(name, store_path, as_json):
    """List every version (of model NAME), with aliases and metrics."""
    with _registry(store_path) as registry:
        versions = registry.versions(name)
    if as_json:
        _echo_json_array([mv.to_dict() for mv in versions])
        return
    if not versions:
        click.echo("no models registered")
        return
    nw = max(4, *(len(mv.name) for mv in versions))
    aw = max(7, *(len(", ".join(mv.aliases)) for mv in versions))
    rw = max(3, *(len(mv.run_id) for mv in versions))
    lines = [f"{'NAME':<{nw}}  {'VERSION':>7}  {'ALIASES':<{aw}}  {'RUN':<{rw}}  {'CREATED':<19}  METRICS"]
    for mv in versions:
        lines.append(
            f"{mv.name:<{nw}}  {mv.version:>7}  {', '.join(mv.aliases):<{aw}}  {mv.run_id:<{rw}}  "
            f"{mv.created[:19].replace('T', ' '):<19}  {_metrics_text(mv.metrics, 4)}"
        )
    click.echo("\n".join(lines))


@models.command("show")
@click.argument("uri")
@store_option
@json_option
def models_show(uri, store_path, as_json):
    """Show the version URI points at: metrics, lineage, aliases, tags."""
    with _registry(store_path) as registry:
        mv = registry.get(uri)
        path = registry.artifact_path(mv)
    if as_json:
        _echo_json(mv.to_dict())
        return
    git = mv.code.get("git") or {}
    git_text = f"{git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}" if git else "-"
    rows = [
        ("aliases", ", ".join(mv.aliases) or "-"),
        ("run", f"{mv.run_id}  (template {mv.code.get('template')}, sha256 {str(mv.code.get('template_sha256'))[:12]}…, git {git_text})"),
        ("created", f"{mv.created}  by {mv.created_by}"),
        ("task", f"{mv.task or '-'}  target {mv.target!r}"),
        ("estimator", mv.estimator or "-"),
        ("hyperparameters", json.dumps(mv.hyperparameters, sort_keys=True)),
        ("features", ", ".join(mv.features)),
        ("metrics", _metrics_text(mv.metrics) or "-"),
        *[(f"data ({d.get('parameter')})", f"{d.get('path')}  sha256 {d.get('sha256')}  {d.get('bytes')} B") for d in mv.data],
        ("artifact", f"{path}  sha256 {mv.sha256}  {mv.bytes} B"),
        ("scikit-learn", mv.sklearn_version or "-"),
        ("tags", "  ".join(f"{k}={v}" for k, v in mv.tags.items()) or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    click.echo(f"{mv.uri}")
    click.echo("\n".join(f"  {k:<{width}}  {v}" for k, v in rows))


def _version_text(value: Any) -> str:
    return "-" if value is None else str(value)


@models.command("history")
@click.argument("name")
@click.option("--alias", default=None, metavar="ALIAS", help="Only this alias.")
@store_option
@json_option
def models_history(name, alias, store_path, as_json):
    """Every move of NAME's aliases, oldest first: time, alias, from, to, why, caused by."""
    with _registry(store_path) as registry:
        events = registry.history(name, alias)
    if as_json:
        _echo_json_array([e.to_dict() for e in events])
        return
    if not events:
        click.echo(f"no alias of {name} has moved yet")
        return
    aw = max(5, *(len(e.alias) for e in events))
    cw = max(9, *(len(e.caused_by) for e in events))
    lines = [f"{'SEQ':>5}  {'TIME':<23}  {'ALIAS':<{aw}}  {'ACTION':<8}  {'FROM':>4} -> {'TO':<4}  {'CAUSED BY':<{cw}}  REASON"]
    for e in events:
        lines.append(
            f"{e.seq:>5}  {e.at:<23}  {e.alias:<{aw}}  {e.action:<8}  {_version_text(e.from_version):>4} -> "
            f"{e.to_version:<4}  {e.caused_by:<{cw}}  {e.reason or ''}".rstrip()
        )
    click.echo("\n".join(lines))


def _parse_tags(pairs: tuple[str, ...]) -> dict[str, str]:
    from mlnb.exceptions import RegistryError

    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RegistryError(f"tag {pair!r} is not KEY=VALUE")
        tags[key] = value
    return tags


@models.command("register")
@click.argument("run_id", metavar="RUN")
@click.option("--name", required=True, metavar="NAME", help="Model name: [a-z0-9][a-z0-9._-]*.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the new version (repeatable).")
@caused_by_option
@store_option
@json_option
def models_register(run_id, name, tags, caused_by, store_path, as_json):
    """Register the model of training run RUN as the next version of NAME."""
    with _registry(store_path) as registry:
        mv = registry.register(run_id, name, tags=_parse_tags(tags), caused_by=_actor(caused_by))
    if as_json:
        _echo_json(mv.to_dict())
        return
    click.echo(f"registered {mv.uri} from run {mv.run_id}  {_metrics_text(mv.metrics, 4)}")


def _print_move(event, name: str, alias: str, version: int | None = None) -> None:
    if event is None:
        click.echo(f"{name}@{alias} already points at version {version}; nothing changed")
    else:
        click.echo(
            f"{name}@{alias}: {_version_text(event.from_version)} -> {event.to_version} "
            f"({event.action}, history #{event.seq})"
        )


@models.command("promote")
@click.argument("name")
@click.argument("version")
@alias_option
@reason_option
@caused_by_option
@store_option
def models_promote(name, version, alias, reason, caused_by, store_path):
    """Point NAME@ALIAS (production by default) at VERSION."""
    with _registry(store_path) as registry:
        registry.versions(name)  # an unknown model is refused before the store is created
        event = registry.promote(name, version, alias=alias, reason=reason, caused_by=_actor(caused_by))
    _print_move(event, name, alias, version)


@models.command("rollback")
@click.argument("name")
@alias_option
@reason_option
@caused_by_option
@store_option
def models_rollback(name, alias, reason, caused_by, store_path):
    """Move NAME@ALIAS back to the version it had before its latest move.

    Repeated rollbacks walk further back through earlier versions; a rollback is not itself
    undone by the next one.
    """
    with _registry(store_path) as registry:
        registry.versions(name)  # an unknown model is refused before the store is created
        event = registry.rollback(name, alias=alias, reason=reason, caused_by=_actor(caused_by))
    _print_move(event, name, alias)


@models.command("tag")
@click.argument("uri")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@caused_by_option
@store_option
def models_tag(uri, pairs, caused_by, store_path):
    """Add tags to the version URI points at (a key set again takes the new value)."""
    with _registry(store_path) as registry:
        registry.get(uri)  # an unknown model is refused before the store is created
        mv = registry.add_tags(uri, _parse_tags(pairs), caused_by=_actor(caused_by))
    click.echo(f"{mv.uri}: " + "  ".join(f"{k}={v}" for k, v in mv.tags.items()))
