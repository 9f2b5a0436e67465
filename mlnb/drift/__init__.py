"""Data drift: does a batch of data still look like the reference it is compared with?

:func:`compare` tests every column of a current batch against the same column of a
reference and returns a :class:`DriftReport`: per column the kind, the method, the
statistic, the p-value where the method has one, the threshold and the verdict, plus the
share of drifted columns and the dataset verdict. :func:`profile` summarises the reference
once and saves it (``.npz``), so a monitor does not reread and re-sort the reference for
every batch.

``method="auto"`` chooses per column exactly as Evidently does (``_get_default_stattest`` in
``calculations/stattests/registry.py`` and ``_get_column_type`` in
``utils/data_preprocessing.py``, Evidently 0.4 to 0.7 and its ``legacy`` package), so
verdicts are comparable with Evidently's data drift preset:

=====================  ============================  =====================================
reference rows [1]_    numerical, > 5 values [2]_    categorical, or <= 5 values
=====================  ============================  =====================================
<= 1,000               ``ks``: drift if p <= 0.05    ``chisquare`` (> 2 values) or ``z``
                                                     (<= 2 values): drift if p < 0.05
> 1,000                ``wasserstein``: drift if     ``jensenshannon``: drift if >= 0.1
                       >= 0.1
=====================  ============================  =====================================

.. [1] Non-missing reference values of the column, as Evidently counts them after dropping
   NaN and infinities.
.. [2] Distinct values over reference and current together.

A column is numerical when its values are numbers, except an integer column with at most 5
distinct reference values, which is categorical (Evidently's ``NUMBER_UNIQUE_AS_CATEGORICAL``).
Text, categorical and boolean columns are categorical (Evidently calls booleans numerical,
but tests them exactly like categories because they have two values). Datetime columns
are reported and not tested, as in Evidently. The dataset drifts when the share of drifted
columns reaches ``drift_share`` (0.5).

The methods (every choice can be overridden per column):

- ``ks``: two-sample Kolmogorov-Smirnov, as :func:`scipy.stats.ks_2samp` (exact p-value up
  to 10,000 rows a side, Smirnov's asymptotic distribution above, as scipy's ``auto``).
- ``wasserstein``: :func:`scipy.stats.wasserstein_distance` divided by the reference's
  population standard deviation, floored at 0.001 as Evidently does.
- ``jensenshannon``: :func:`scipy.spatial.distance.jensenshannon` (natural log, at most
  0.833) of the category shares; numerical columns with more than 20 distinct reference
  values are first binned into Sturges equal-width bins over both samples' range
  (Evidently's ``get_binned_data``), otherwise compared value by value.
- ``psi``: Population Stability Index on the same shares, empty shares replaced by a tiny
  share as Evidently does; drift if >= 0.1.
- ``chisquare``: Evidently's chi-squared, :func:`scipy.stats.chisquare` of the current
  counts against counts expected from the reference shares. A value the reference never
  had makes the statistic infinite (p = 0).
- ``chi2_contingency``: the two-sample chi-squared test of homogeneity of
  :func:`scipy.stats.chi2_contingency` (Yates' correction for two categories, as scipy).
- ``z``: two-proportion Z-test of the share of the first value (in sorted order) against
  the rest, two-sided, as Evidently.

Missing values (None, NaN, and for numbers also infinities) are counted per column and
left out of the tests, as Evidently does; a column missing entirely on one side drifts.
P-values can be corrected for testing many columns (``correction="bonferroni"`` or
``"fdr"``, Benjamini-Hochberg); the verdict then uses the adjusted p-value.

The package, one concept per module: :mod:`~mlnb.drift.summaries` (what a test needs from
one column), :mod:`~mlnb.drift.kernels` (the statistics), :mod:`~mlnb.drift.methods` (each
method with its test; add a method there), :mod:`~mlnb.drift.column` (one column's test),
:mod:`~mlnb.drift.report` (verdicts and the report), :mod:`~mlnb.drift.inputs` (checking
what the entry points are given), :mod:`~mlnb.drift.comparison` (:func:`compare`),
:mod:`~mlnb.drift.profiles` (:func:`profile` and its file), :mod:`~mlnb.drift.plots`.
"""

from mlnb.drift.comparison import compare
from mlnb.drift.inputs import KINDS, auto_exclude
from mlnb.drift.kernels import BIN_MIN_UNIQUE, KS_EXACT_MAX_N, sturges_edges
from mlnb.drift.methods import (
    AUTO_MAX_VALUES_AS_CATEGORICAL,
    AUTO_SMALL_REFERENCE,
    METHODS,
    WASSERSTEIN_MIN_STD,
    Method,
    Outcome,
    auto_method,
)
from mlnb.drift.plots import distribution, plot_distributions
from mlnb.drift.profiles import (
    DEFAULT_MAX_ATOMS,
    PROFILE_SCHEMA,
    ReferenceProfile,
    load_profile,
    load_reference,
    profile,
    sketch,
)
from mlnb.drift.report import CORRECTIONS, REPORT_COLUMNS, DriftReport, correct_p_values
from mlnb.drift.summaries import ColumnSummary, summarize

__all__ = [
    "AUTO_MAX_VALUES_AS_CATEGORICAL",
    "AUTO_SMALL_REFERENCE",
    "BIN_MIN_UNIQUE",
    "CORRECTIONS",
    "DEFAULT_MAX_ATOMS",
    "KINDS",
    "KS_EXACT_MAX_N",
    "METHODS",
    "PROFILE_SCHEMA",
    "REPORT_COLUMNS",
    "WASSERSTEIN_MIN_STD",
    "ColumnSummary",
    "DriftReport",
    "Method",
    "Outcome",
    "ReferenceProfile",
    "auto_exclude",
    "auto_method",
    "compare",
    "correct_p_values",
    "distribution",
    "load_profile",
    "load_reference",
    "plot_distributions",
    "profile",
    "sketch",
    "sturges_edges",
    "summarize",
]
