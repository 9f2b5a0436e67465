"""A served model: one registered version loaded with what scoring it needs — by the HTTP
server (:mod:`mlnb.serve`) and by the shadow replay (:mod:`mlnb.shadow`), neither importing the other.

A :class:`ServedModel` is a verified, warmed-up version with its request schema
(:func:`request_model`: every feature required and strictly typed, other fields ignored); a
:class:`ModelSlot` holds the version one URI serves now and is replaced whole, never mutated,
so a request that reads it once is answered by one version from start to end.

pandas and pydantic are imported inside the functions that use them.
"""

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import RegistryError

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.predict import Scorer

log = logging.getLogger(__name__)

#: Most rows one request may hold (a larger request is a 422).
DEFAULT_MAX_ROWS = 10_000


@dataclass(frozen=True)
class ServedModel:
    """One loaded version, with what serving it needs. Never mutated: a move replaces it."""

    uri: str  # as asked: weather@production
    name: str
    version: int
    run_id: str
    sha256: str
    task: str
    target: str | None
    features: tuple[str, ...]
    kinds: dict
    scorer: "Scorer"
    request_model: Any  # pydantic model of the request body, built from the features
    loaded_at: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def info(self) -> dict:
        """What responses and /health say about this version."""
        return {"uri": self.uri, "name": self.name, "version": self.version, "run_id": self.run_id}

    def frame(self, rows: list) -> "pd.DataFrame":
        """The feature table of validated rows (pydantic objects or dicts keyed by feature)."""
        import pandas as pd

        if rows and isinstance(rows[0], dict):
            columns = {f: [r[f] for r in rows] for f in self.features}
        else:
            columns = {f: [getattr(r, f"f{i}") for r in rows] for i, f in enumerate(self.features)}
        return pd.DataFrame(columns, columns=list(self.features))


_KIND_HELP = {
    "numeric": "a number",
    "categorical": "a text value",
    "boolean": "true or false",
    "any": "a number, text or boolean",
}


def request_model(name: str, version: int, features: list[str], kinds: dict, max_rows: int = DEFAULT_MAX_ROWS):
    """The pydantic model of ``{"rows": [...]}`` for one version's features.

    Fields are strict (``"1.5"`` is not a number, ``1`` is not a text), required and not
    nullable; numbers must be finite. Field names are the features themselves (aliases, so
    any column name works), so validation errors name them. Extra fields are allowed and
    ignored by the model (they are kept for the shadow model, which may need them).
    """
    from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictStr, create_model

    types = {
        "numeric": float,
        "categorical": StrictStr,
        "boolean": StrictBool,
        "any": StrictFloat | StrictStr | StrictBool,
    }
    fields = {
        f"f{i}": (types[kinds[f]], Field(alias=f, description=f"{_KIND_HELP[kinds[f]]} ({kinds[f]} feature)"))
        for i, f in enumerate(features)
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "model"
    row = create_model(
        f"Row_{slug}_v{version}",
        __config__=ConfigDict(extra="allow", strict=True, allow_inf_nan=False, populate_by_name=False),
        **fields,
    )
    row.__doc__ = f"One row of features for {name}/{version}; fields that are not features are ignored."
    body = create_model(
        f"PredictRequest_{slug}_v{version}",
        __config__=ConfigDict(extra="ignore"),
        rows=(list[row], Field(min_length=1, max_length=max_rows, description="rows to score, at most " f"{max_rows}")),
    )
    body.__doc__ = f"Rows to score with {name}/{version}."
    return body


def load_served(registry, uri: str, version: int | None = None, max_rows: int = DEFAULT_MAX_ROWS) -> ServedModel:
    """Load what ``uri`` points at now (or its ``version``): verified, typed, ready to score.

    Raises:
        ModelNotFound, RegistryError, ArtifactTampered, UntrustedModel: as the registry does.
    """
    from mlnb.metrics import task_of
    from mlnb.predict import Scorer, feature_kinds

    mv = registry.get(uri if version is None else f"{registry_name(uri)}/{version}")
    model = registry.load_version(mv)
    features = list(mv.features)
    if not features:
        raise RegistryError(f"{mv.uri} lists no features; mlnb serve needs them to check requests")
    kinds = feature_kinds(model, features)
    task = mv.task or task_of(model)
    scorer = Scorer(model, task)
    warm_up(scorer, features)
    return ServedModel(
        uri=uri, name=mv.name, version=mv.version, run_id=mv.run_id, sha256=mv.sha256, task=task,
        target=mv.target, features=tuple(features), kinds=kinds, scorer=scorer,
        request_model=request_model(mv.name, mv.version, features, kinds, max_rows),
    )


def warm_up(scorer: "Scorer", features: list[str]) -> None:
    """Score one row of missing values, so the first request does not pay for lazy imports
    and first-call set-up (hundreds of milliseconds). mlnb's pipelines impute every missing
    value; a model that refuses the row is simply not warmed up."""
    import pandas as pd

    try:
        scorer(pd.DataFrame({f: [None] for f in features}, dtype=object))
    except Exception as exc:  # only an optimisation: any failure here is harmless
        log.debug("warm-up of %s skipped: %s", features, exc)


def registry_name(uri: str) -> str:
    from mlnb.registry import parse_uri

    return parse_uri(uri).name


class ModelSlot:
    """The version that one URI serves now. ``current`` is replaced whole, never mutated."""

    def __init__(self, role: str, served: ServedModel):
        self.role = role
        self.uri = served.uri
        self.current = served
        self.failed_version: int | None = None  # the version that failed to load (retried now and then)
        self.failed_at = 0.0
        self.unreadable = False  # the registry could not be read at the last poll


def _limit_threads() -> Any:
    """One OpenMP thread for the calling thread: single requests gain nothing from more, and
    the threads would fight the shadow thread and other workers for the cores."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().limit(limits=1, user_api="openmp")
