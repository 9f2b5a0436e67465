"""Saving and loading models with skops, refusing every type outside an explicit trusted list.

:func:`dump_model` writes a model and checks it would load back; :func:`load_model_bytes`
loads one, refusing any type outside :data:`TRUSTED_TYPES` before skops reads it, so loading
never unpickles an arbitrary object. :func:`load_verified` is how a registered model is
loaded: the caller (the registry) names the file and the sha256 it registered, and the file's
bytes are checked against that hash before skops sees them
(:class:`~mlnb.exceptions.ArtifactTampered` otherwise).

skops is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from mlnb import records
from mlnb.exceptions import ArtifactTampered, UntrustedModel

#: Every type a registry model may contain, fully qualified as skops names them. This is
#: the whole list: anything else in a model file is refused before skops loads it. It was
#: compiled by fitting each of :data:`~mlnb.model.build.SUPPORTED_ESTIMATORS` in mlnb's pipeline (numeric and
#: categorical columns, binary, multiclass and regression targets) and listing the types
#: of the skops file; ``functools.partial`` and ``check_array`` are how ``ColumnTransformer``
#: stores its input validation.
TRUSTED_TYPES = (
    "builtins.bool",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
    "functools.partial",
    "numpy.bool_",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    "numpy.uint64",
    "numpy.uint8",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
)
_TRUSTED = frozenset(TRUSTED_TYPES)


def qualified_name(cls: type) -> str:
    """``module.Class`` as skops names a type."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _schema_types(data: bytes) -> set[str]:
    """Every type named in a skops file's schema (``module.Class``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UntrustedModel(f"not a skops model file ({exc})") from exc
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops file (its bytes) that are not in :data:`TRUSTED_TYPES`.

    Both the types skops itself would not trust and every type the file's schema names are
    checked, so the answer does not depend on skops's own default list.
    """
    import skops.io as sio

    found = _schema_types(data)
    try:
        found |= set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many kinds on a malformed file
        raise UntrustedModel(f"not a readable skops model file ({type(exc).__name__}: {exc})") from exc
    return sorted(t for t in found if t not in _TRUSTED)


def load_model_bytes(data: bytes, where: str = "model"):
    """Load a skops model from its bytes, refusing any type outside :data:`TRUSTED_TYPES`.

    Raises:
        UntrustedModel: naming the types that are not trusted.
    """
    import skops.io as sio

    bad = untrusted_types(data)
    if bad:
        raise UntrustedModel(
            f"{where}: refusing to load a model holding types outside mlnb's trusted list: "
            f"{', '.join(bad)}",
            types=bad,
        )
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


def dump_model(model, path) -> dict:
    """Save ``model`` with skops and check it loads back with the trusted types only.

    Returns:
        ``{"sha256", "bytes"}`` of the file.

    Raises:
        UntrustedModel: the model holds a type mlnb would refuse to load (nothing is written).
    """
    import skops.io as sio

    path = Path(path)
    data = sio.dumps(model)
    bad = untrusted_types(data)
    if bad:
        raise UntrustedModel(
            f"model holds types outside mlnb's trusted list, so the registry could not load it: {', '.join(bad)}",
            types=bad,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"sha256": records.sha256_bytes(data), "bytes": len(data)}


def read_verified(path: str | os.PathLike, sha256: str, *, where: str, run_id: str) -> bytes:
    """A model file's bytes, after checking them against the ``sha256`` it was registered with.

    Args:
        where: what the messages call the model (its URI).
        run_id: the run whose artifact the file is, named in the messages so it can be checked.

    Raises:
        ArtifactTampered: the file is missing or its content changed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactTampered(
            f"{where}: model artifact {path} is missing (was run {run_id} removed?); refusing to load"
        ) from None
    actual = records.sha256_bytes(data)
    if actual != sha256:
        raise ArtifactTampered(
            f"{where}: model artifact {path} changed since it was registered (sha256 {actual[:12]}…, "
            f"registered {sha256[:12]}…); refusing to load it; 'mlnb runs verify {run_id}' shows what changed"
        )
    return data


def load_verified(path: str | os.PathLike, sha256: str, *, where: str, run_id: str):
    """Load a model file: sha256 checked (:func:`read_verified`), then skops with trusted types only.

    Raises:
        ArtifactTampered: the file changed or is missing.
        UntrustedModel: the file holds a type outside the trusted list.
    """
    return load_model_bytes(read_verified(path, sha256, where=where, run_id=run_id), where=where)
