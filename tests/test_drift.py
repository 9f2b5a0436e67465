"""mlnb.drift: numbers against scipy, Evidently's method choice, profiles, edge cases, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlnb import drift
from mlnb.data import read_table
from mlnb.exceptions import DriftError

DATA = Path(__file__).resolve().parents[1] / "data"
TOL = 1e-6


def _row(report: drift.DriftReport, column: str) -> pd.Series:
    return report.columns.set_index("column").loc[column]


def _seattle(quarter: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_table(DATA / "reference.csv"), read_table(DATA / "batches" / f"{quarter}.csv")


# -- data sets for the scipy comparisons: (reference, current) numeric arrays ---------------


def _numeric_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    if name == "normal-small":  # exact KS p-values (both sides <= 10,000)
        return rng.normal(0, 1, 300), rng.normal(0.3, 1.2, 250)
    if name == "normal-large":  # asymptotic KS p-values
        return rng.normal(0, 1, 12_000), rng.normal(0.02, 1, 15_000)
    if name == "ties":  # many repeated values on both sides
        return rng.exponential(3, 5_000).round(1), rng.exponential(3.2, 4_000).round(1)
    if name == "ties-large":  # the same, past scipy's exact KS limit: mlnb's own KS kernel
        return rng.exponential(3, 12_000).round(1), rng.exponential(3, 11_000).round(1)
    if name == "integers":
        return rng.integers(0, 60, 2_000).astype(float), rng.integers(5, 70, 1_500).astype(float)
    if name == "identical":
        x = rng.normal(size=800)
        return x, x.copy()
    ref, cur = _seattle("2013-q3")  # real data: 2012 against summer 2013
    col = name.split(":")[1]
    return ref[col].to_numpy(), cur[col].to_numpy()


NUMERIC_CASES = ["normal-small", "normal-large", "ties", "ties-large", "integers", "identical",
                 "seattle:temp_max", "seattle:precipitation", "seattle:wind"]


@pytest.mark.parametrize("case", NUMERIC_CASES)
def test_ks_agrees_with_scipy(case):
    a, b = _numeric_case(case)
    row = _row(drift.compare(pd.DataFrame({"x": a}), pd.DataFrame({"x": b}), method="ks"), "x")
    expected = stats.ks_2samp(a, b)
    assert row.statistic == pytest.approx(expected.statistic, abs=TOL)
    assert row.p_value == pytest.approx(expected.pvalue, abs=TOL)
    assert row.drifted == (expected.pvalue <= 0.05)


@pytest.mark.parametrize("case", NUMERIC_CASES)
def test_wasserstein_agrees_with_scipy(case):
    a, b = _numeric_case(case)
    row = _row(drift.compare(pd.DataFrame({"x": a}), pd.DataFrame({"x": b}), method="wasserstein"), "x")
    expected = stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)
    assert row.statistic == pytest.approx(expected, abs=TOL)
    assert row.drifted == (expected >= 0.1)


@pytest.mark.parametrize("case", NUMERIC_CASES)
def test_numerical_jensenshannon_and_psi_bin_like_evidently(case):
    # Evidently bins numerical columns with more than 20 distinct reference values into
    # Sturges bins over both samples, and compares value by value otherwise.
    a, b = _numeric_case(case)
    if len(np.unique(a)) > 20:
        edges = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
        ra, rb = np.histogram(a, edges)[0] / a.size, np.histogram(b, edges)[0] / b.size
    else:
        keys = np.union1d(a, b)
        ra = np.array([(a == k).sum() for k in keys]) / a.size
        rb = np.array([(b == k).sum() for k in keys]) / b.size
    ref, cur = pd.DataFrame({"x": a}), pd.DataFrame({"x": b})
    js = _row(drift.compare(ref, cur, method="jensenshannon"), "x").statistic
    assert js == pytest.approx(jensenshannon(ra, rb), abs=TOL)
    fill = lambda p: np.where(p == 0, min(p[p > 0]) / 1e6 if min(p[p > 0]) <= 1e-4 else 1e-4, p)  # noqa: E731
    fa, fb = fill(ra), fill(rb)
    psi = _row(drift.compare(ref, cur, method="psi"), "x").statistic
    assert psi == pytest.approx(np.sum((fa - fb) * np.log(fa / fb)), abs=TOL)


def _categorical_case(name: str) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    if name == "random":
        labels = np.array(list("abcdef"))
        return (pd.Series(labels[rng.choice(6, 900, p=[.3, .2, .2, .1, .1, .1])]),
                pd.Series(labels[rng.choice(6, 700, p=[.25, .25, .2, .1, .1, .1])]))
    if name == "binary":
        return pd.Series(rng.choice(["yes", "no"], 500, p=[.6, .4])), pd.Series(rng.choice(["yes", "no"], 400))
    ref, cur = _seattle(name.split(":")[1])  # real: weather labels, 2012 vs a quarter
    return ref["weather"], cur["weather"]


def _counts(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(set(ref) | set(cur))
    return (ref.value_counts().reindex(keys, fill_value=0).to_numpy(),
            cur.value_counts().reindex(keys, fill_value=0).to_numpy())


CATEGORICAL_CASES = ["random", "binary", "seattle:2013-q1", "seattle:2014-q4"]


@pytest.mark.parametrize("case", CATEGORICAL_CASES)
@pytest.mark.parametrize("method", ["chisquare", "chi2_contingency", "jensenshannon", "z"])
def test_categorical_methods_agree_with_scipy(case, method):
    a, b = _categorical_case(case)
    rc, cc = _counts(a, b)
    row = _row(drift.compare(pd.DataFrame({"c": a}), pd.DataFrame({"c": b}), method=method), "c")
    if method == "chisquare":  # Evidently: current counts against reference shares
        if np.any((rc == 0) & (cc > 0)):
            assert math.isinf(row.statistic) and row.p_value == 0 and row.drifted
            return
        expected = stats.chisquare(cc, rc * cc.sum() / rc.sum())
        stat, p = expected.statistic, expected.pvalue
    elif method == "chi2_contingency":
        expected = stats.chi2_contingency(np.vstack([rc, cc]))
        stat, p = expected.statistic, expected.pvalue
    elif method == "jensenshannon":
        stat, p = jensenshannon(rc / rc.sum(), cc / cc.sum()), math.nan
    else:
        # Evidently's Z-test: first sorted value against the rest; z^2 is the uncorrected
        # chi-squared of that 2x2 table.
        table = np.array([[rc[0], rc[1:].sum()], [cc[0], cc[1:].sum()]])
        expected = stats.chi2_contingency(table, correction=False)
        stat, p = math.copysign(math.sqrt(expected.statistic), cc[0] / cc.sum() - rc[0] / rc.sum()), expected.pvalue
    assert row.statistic == pytest.approx(stat, abs=TOL)
    if not math.isnan(p):
        assert row.p_value == pytest.approx(p, abs=TOL)


@pytest.mark.parametrize("dtype", ["float", "int"])
@pytest.mark.parametrize("size", [2, 37, 1000, 4096])
def test_sturges_edges_from_min_max_and_size_equal_numpy(dtype, size):
    rng = np.random.default_rng(size)
    x = rng.normal(0, 30, size) if dtype == "float" else rng.integers(-40, 40, size)
    got = drift.sturges_edges(x.min(), x.max(), x.size, integer=dtype == "int")
    np.testing.assert_array_equal(got, np.histogram_bin_edges(x, bins="sturges"))


# -- Evidently's automatic choice ----------------------------------------------------------


def _auto(ref_values, cur_values) -> pd.Series:
    return _row(drift.compare(pd.DataFrame({"x": ref_values}), pd.DataFrame({"x": cur_values})), "x")


RNG = np.random.default_rng(7)
AUTO_CASES = [
    # (case, reference, current, expected kind, expected method)
    ("numerical, 1000 rows", RNG.normal(size=1000), RNG.normal(size=50), "numerical", "ks"),
    ("numerical, 1001 rows", RNG.normal(size=1001), RNG.normal(size=50), "numerical", "wasserstein"),
    ("1000 values + 300 missing", np.r_[RNG.normal(size=1000), [np.nan] * 300], RNG.normal(size=50),
     "numerical", "ks"),
    ("4 distinct floats, small", RNG.choice([.5, 1., 1.5, 2.], 500), RNG.choice([.5, 1.], 40), "numerical",
     "chisquare"),
    ("2 distinct floats, small", RNG.choice([0., 1.], 500), RNG.choice([0., 1.], 40), "numerical", "z"),
    ("3 distinct floats, large", RNG.choice([0., 1., 2.], 5000), RNG.choice([0., 1.], 40), "numerical",
     "jensenshannon"),
    ("5 distinct ints are categories", RNG.integers(0, 5, 500), RNG.integers(0, 5, 40), "categorical",
     "chisquare"),
    ("6 distinct ints are numbers", RNG.integers(0, 6, 500), RNG.integers(0, 6, 40), "numerical", "ks"),
    ("text, 3 values, small", RNG.choice(list("abc"), 1000), RNG.choice(list("ab"), 40), "categorical",
     "chisquare"),
    ("text, 2 values, small", RNG.choice(list("ab"), 1000), RNG.choice(list("ab"), 40), "categorical", "z"),
    ("text, large", RNG.choice(list("ab"), 1001), RNG.choice(list("ab"), 40), "categorical", "jensenshannon"),
    ("booleans", RNG.random(300) < .5, RNG.random(40) < .5, "categorical", "z"),
]


@pytest.mark.parametrize("case,ref,cur,kind,method", AUTO_CASES, ids=[c[0] for c in AUTO_CASES])
def test_auto_chooses_like_evidently(case, ref, cur, kind, method):
    row = _auto(ref, cur)
    assert (row.kind, row.method) == (kind, method)
    assert row.threshold == (0.1 if method in ("wasserstein", "jensenshannon") else 0.05)


@pytest.mark.parametrize(
    "method,score,threshold,drifted",
    [("ks", 0.05, 0.05, True), ("chisquare", 0.05, 0.05, False), ("z", 0.0499, 0.05, True),
     ("wasserstein", 0.1, 0.1, True), ("jensenshannon", 0.0999, 0.1, False)],
)
def test_verdict_boundaries_follow_evidently(method, score, threshold, drifted):
    # KS drifts at p <= threshold, chi-squared and Z at p < threshold, distances at >=.
    assert drift.METHODS[method].drifted(score, threshold) is drifted


def test_a_new_method_is_one_entry_in_methods(monkeypatch):
    # A Method carries its own test: compare, thresholds and the report need nothing else.
    def mean_shift(ref, cur, kind):
        means = [np.repeat(s.values, s.counts).mean() for s in (ref, cur)]
        return drift.Outcome(float(abs(means[1] - means[0])))

    method = drift.Method("mean_shift", "mean shift", False, 0.5, True, mean_shift, numeric_only=True)
    monkeypatch.setitem(drift.METHODS, "mean_shift", method)
    ref, cur = pd.DataFrame({"x": np.arange(100.0)}), pd.DataFrame({"x": np.arange(100.0) + 1})
    row = _row(drift.compare(ref, cur, method="mean_shift"), "x")
    assert row.statistic == 1.0 and row.drifted and row.detail == "mean shift 1 >= 0.5"
    assert not _row(drift.compare(ref, cur, method="mean_shift", threshold={"mean_shift": 2}), "x").drifted


def test_dataset_drift_when_share_reaches_threshold():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({c: rng.normal(size=2000) for c in "abcd"})
    cur = pd.DataFrame({"a": rng.normal(2, 1, 500), "b": rng.normal(2, 1, 500),
                        "c": rng.normal(size=500), "d": rng.normal(size=500)})
    report = drift.compare(ref, cur)
    assert list(report.columns["drifted"]) == [True, True, False, False]
    assert report.drift_share == 0.5 and report.dataset_drift
    assert not drift.compare(ref, cur, drift_share=0.6).dataset_drift
    assert report.by_severity()["column"].tolist()[:2] in (["a", "b"], ["b", "a"])


def test_every_choice_is_overridable_per_column():
    ref, cur = _seattle("2013-q3")
    report = drift.compare(
        ref, cur, exclude=["date"],
        method={"temp_max": "psi", "weather": "chi2_contingency"},
        threshold={"temp_max": 0.5, "ks": 1e-30, "precipitation": 0.2},
        kinds={"wind": "categorical"},
    )
    table = report.columns.set_index("column")
    assert table.loc["temp_max", ["method", "threshold"]].tolist() == ["psi", 0.5]
    assert table.loc["weather", "method"] == "chi2_contingency"
    assert table.loc["temp_min", ["method", "threshold"]].tolist() == ["ks", 1e-30]  # per method
    assert table.loc["precipitation", "threshold"] == 0.2  # a column beats its method
    assert table.loc["wind", ["kind", "method"]].tolist() == ["categorical", "chisquare"]
    wind = drift.compare(ref, cur, columns=["wind"], method="ks", threshold=0.01).columns.iloc[0]
    assert wind.threshold == 0.01


def test_threads_give_the_same_report():
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"a": rng.normal(size=60_000), "b": rng.exponential(size=60_000).round(2),
                        "c": rng.choice(list("xyz"), 60_000)})
    cur = pd.DataFrame({"a": rng.normal(.1, 1, 50_000), "b": rng.exponential(size=50_000).round(2),
                        "c": rng.choice(list("xy"), 50_000)})
    pd.testing.assert_frame_equal(drift.compare(ref, cur, n_jobs=2).columns, drift.compare(ref, cur).columns)


# -- multiple testing ------------------------------------------------------------------------


def test_corrections_match_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    assert drift.correct_p_values(p, "none") == p
    assert drift.correct_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # Benjamini-Hochberg by hand: sorted 0.005, 0.01, 0.03, 0.04 -> p * 4 / rank, then the
    # running minimum from the largest rank down.
    assert drift.correct_p_values(p, "fdr") == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_correction_changes_verdicts_in_compare():
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=400) for i in range(8)})
    cur = pd.DataFrame({f"x{i}": rng.normal(0.12 * i, 1, 300) for i in range(8)})
    plain = drift.compare(ref, cur).columns
    for correction, adjust in [
        ("bonferroni", lambda p: np.minimum(p * p.size, 1)),
        ("fdr", lambda p: stats.false_discovery_control(p, method="bh")),
    ]:
        table = drift.compare(ref, cur, correction=correction).columns
        expected = adjust(plain["p_value"].to_numpy())
        np.testing.assert_allclose(table["p_value_adjusted"], expected, rtol=1e-12)
        assert table["drifted"].tolist() == (expected <= 0.05).tolist()
    assert drift.compare(ref, cur, correction="bonferroni").n_drifted < drift.compare(ref, cur).n_drifted


# -- profiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [300, 3000])
@pytest.mark.parametrize("method", ["auto", "ks", "wasserstein", "jensenshannon", "psi", "chisquare"])
def test_profile_gives_the_results_of_the_raw_reference(tmp_path, rows, method):
    rng = np.random.default_rng(rows)
    ref = pd.DataFrame({
        "x": rng.normal(size=rows), "ties": rng.integers(0, 40, rows) / 2,
        "cat": rng.choice(["a", "b", "c", None], rows), "flag": rng.random(rows) < .3,
    })
    ref.loc[::17, "x"] = np.nan
    cur = pd.DataFrame({"x": rng.normal(.1, 1, 500), "ties": rng.integers(0, 44, 500) / 2,
                        "cat": rng.choice(["a", "b", "d"], 500), "flag": rng.random(500) < .4})
    methods = method if method == "auto" else {c: method for c in ("x", "ties")}
    expected = drift.compare(ref, cur, method=methods).columns
    path = drift.profile(ref, tmp_path / "ref.npz").save(tmp_path / "ref.npz")
    for reference in (drift.profile(ref), str(path)):
        pd.testing.assert_frame_equal(drift.compare(reference, cur, method=methods).columns, expected, check_exact=True)


def test_sketched_profile_stays_within_its_stated_error(tmp_path):
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.lognormal(0, 1, 60_000)})
    cur = pd.DataFrame({"x": rng.lognormal(0.05, 1, 20_000)})
    prof = drift.profile(ref, tmp_path / "p.npz", max_atoms=1000)
    assert not prof.columns["x"].exact
    assert (tmp_path / "p.npz").stat().st_size < 30_000  # 1000 values, not 60,000
    for method in ("wasserstein", "ks"):
        exact = _row(drift.compare(ref, cur, method=method), "x")
        approx = _row(drift.compare(tmp_path / "p.npz", cur, method=method), "x")
        assert 0 < approx.max_error < 1e-2  # 1,000 atoms; the default 32,768 gives ~1e-4
        assert abs(approx.statistic - exact.statistic) <= approx.max_error
        assert "sketched profile" in approx.detail
        assert exact.max_error == 0


def test_profile_keeps_missing_counts_and_rejects_bad_files(tmp_path):
    ref = pd.DataFrame({"x": [1.0, np.nan, np.inf, 2.0, 3.0, 4.0, 5.0, 6.0]})
    prof = drift.load_profile(drift.profile(ref).save(tmp_path / "p.npz"))
    assert (prof.columns["x"].n, prof.columns["x"].n_missing, prof.columns["x"].n_infinite) == (6, 2, 1)
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(DriftError, match="cannot read drift profile .*other.npz"):
        drift.load_profile(tmp_path / "other.npz")
    with pytest.raises(DriftError, match="must end in .npz"):
        drift.profile(ref, tmp_path / "p.json")


# -- missing values, constant and one-sided columns -----------------------------------------


def test_missing_values_are_counted_and_left_out():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=500), rng.normal(0.2, 1, 400)
    holes = pd.DataFrame({"x": np.r_[a, [np.nan, np.inf, -np.inf]]})
    report = drift.compare(holes, pd.DataFrame({"x": pd.array(np.r_[b, [np.nan] * 5], dtype="Float64")}))
    row = _row(report, "x")
    assert (row.n_reference, row.n_missing_reference, row.n_current, row.n_missing_current) == (500, 3, 400, 5)
    assert "3 missing in reference, 2 of them infinite" in row.detail
    assert row.statistic == _row(drift.compare(pd.DataFrame({"x": a}), pd.DataFrame({"x": b})), "x").statistic


def test_all_missing_constant_and_one_sided_columns_get_clear_verdicts():
    n = 50
    ref = pd.DataFrame({"gone": np.arange(n, dtype=float), "empty": [None] * n, "const": [7.0] * n,
                        "flip": ["a"] * n, "old": range(n), "x": np.linspace(0, 1, n)})
    cur = pd.DataFrame({"gone": [np.nan] * n, "empty": [np.nan] * n, "const": [7.0] * n,
                        "flip": ["b"] * n, "new": range(n), "x": np.linspace(0, 1, n)})
    table = drift.compare(ref, cur).columns.set_index("column")
    assert table.loc["gone", "drifted"] and "all values missing in current" in table.loc["gone", "detail"]
    assert not table.loc["empty", "compared"] and not table.loc["empty", "drifted"]
    assert "all values missing on both sides" in table.loc["empty", "detail"]
    assert table.loc["const", ["statistic", "p_value", "drifted"]].tolist() == [0.0, 1.0, False]
    assert table.loc["flip", "drifted"] and table.loc["flip", "p_value"] < 1e-10
    assert "only in reference" in table.loc["old", "detail"] and not table.loc["old", "compared"]
    assert "only in current" in table.loc["new", "detail"] and not table.loc["new", "compared"]
    assert table["drifted"].dtype == bool
    report = drift.compare(ref, cur)
    assert report.n_compared == 4 and report.drift_share == 2 / 4  # gone and flip of gone, const, flip, x


def test_constant_reference_uses_evidentlys_std_floor():
    ref = pd.DataFrame({"x": np.full(2000, 3.0)})
    cur = pd.DataFrame({"x": np.linspace(3, 3.01, 100)})
    row = _row(drift.compare(ref, cur, method="wasserstein"), "x")
    assert row.statistic == pytest.approx(stats.wasserstein_distance(ref.x, cur.x) / 0.001)
    assert "divided by 0.001" in row.detail


def test_datetime_columns_are_reported_not_compared():
    when = pd.date_range("2020-01-01", periods=20, freq="D")
    ref, cur = pd.DataFrame({"t": when, "x": range(20)}), pd.DataFrame({"t": when, "x": range(20)})
    row = _row(drift.compare(ref, cur, exclude=None), "t")
    assert row.kind == "datetime" and not row.compared and "not compared" in row.detail
    # by default, dates are left out by rule, and the report says so
    report = drift.compare(ref, cur)
    assert list(report.columns["column"]) == ["x"]
    assert report.excluded == {"t": "dates: differ between batches by construction"}


@pytest.mark.parametrize(
    "column, values, reason",
    [
        ("day", [f"2020-01-{d:02d}" for d in range(1, 31)], "dates"),
        ("customer_id", list(range(30)), "identifier"),
        ("uuid", [f"u{i}" for i in range(30)], "identifier"),
        ("name", [f"person {i}" for i in range(30)], "identifier"),  # text unique on every row
        ("model", [f"car {i % 20}" for i in range(30)], "identifier: text with a distinct value on most rows"),
    ],
)
def test_auto_exclude_leaves_dates_and_identifiers_out_and_says_why(column, values, reason):
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({column: values, "x": rng.normal(size=30)})
    report = drift.compare(ref, ref.assign(x=rng.normal(size=30)))
    assert column not in set(report.columns["column"]) and report.excluded[column].startswith(reason)
    assert report.to_dict()["excluded"] == report.excluded
    kept = drift.compare(ref, ref, columns=[column, "x"])  # named columns are compared as asked
    assert column in set(kept.columns["column"]) and not kept.excluded


def test_exclude_naming_no_column_lists_the_columns():
    ref = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(DriftError, match=r"exclude names column 'date', which is in neither reference nor current; "
                                         r"columns are: 'a', 'b'"):
        drift.compare(ref, ref, exclude=["date"])


def test_to_dict_is_strict_json_and_new_categories_explain_themselves():
    ref, cur = pd.DataFrame({"c": list("aab" * 10)}), pd.DataFrame({"c": list("abz" * 10)})
    report = drift.compare(ref, cur)
    row = _row(report, "c")
    assert row.method == "chisquare" and math.isinf(row.statistic) and row.drifted
    assert "never seen in reference: z" in row.detail
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["columns"][0]["statistic"] is None
    assert data["dataset_drift"] is True and data["drift_share"] == 1.0


def test_reads_paths_and_explains_seasonal_drift_on_real_data():
    report = drift.compare(DATA / "reference.csv", DATA / "batches" / "2013-q3.csv", exclude=["date"])
    table = report.columns.set_index("column")
    assert report.dataset_drift and table.loc["temp_max", "drifted"]
    assert table.loc["temp_max", "detail"].startswith("KS p-value")
    assert report.summary() == "5 of 5 columns drifted (100%; dataset drift when >= 50%): dataset drift detected."


def test_distribution_shares_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    ref, cur = _seattle("2013-q1")
    numeric = drift.distribution(ref, cur, "temp_max", bins=10)
    assert len(numeric) == 10 and numeric[["reference", "current"]].sum().round(12).tolist() == [1.0, 1.0]
    labels = drift.distribution(ref, cur, "weather", top=2)
    assert labels["value"].iloc[-1] == "(other)" and labels["reference"].sum() == pytest.approx(1.0)
    fig = drift.plot_distributions(ref, cur, ["temp_max", "weather", "wind"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["temp_max", "weather", "wind"]


# -- bad input -------------------------------------------------------------------------------


GOOD = pd.DataFrame({"x": [1.0, 2.0, 3.0], "t": ["a", "b", "c"]})
BAD_INPUT = [
    ("empty reference", dict(reference=GOOD.iloc[:0]), "reference is empty"),
    ("empty current", dict(current=GOOD.iloc[:0]), "current is empty"),
    ("no common columns", dict(current=pd.DataFrame({"y": [1]})), "no column in common.*'x'.*'y'"),
    ("number vs text", dict(current=pd.DataFrame({"x": ["a", "b"], "t": ["a", "b"]})),
     "column 'x' is numerical .* in reference but text/categorical .* in current"),
    ("unknown method", dict(method="kolmogorov"), "unknown drift method 'kolmogorov'; allowed: auto, chi2"),
    ("unknown method for a column", dict(method={"x": "t-test"}), "unknown drift method 't-test' for column 'x'"),
    ("method for an unknown column", dict(method={"nope": "ks"}), "names column 'nope'"),
    ("numbers-only method on text", dict(method={"t": "ks"}), "method 'ks' needs numbers; column 't'"),
    ("p-value threshold above 1", dict(method="ks", columns=["x"], threshold=1.5),
     r"threshold 1.5 for column 'x' \(ks\) is out of range.*\(0, 1\)"),
    ("negative distance threshold", dict(method={"x": "wasserstein"}, threshold={"x": -0.1}),
     "threshold -0.1 for column 'x' .*must be > 0"),
    ("JS threshold it can never reach", dict(threshold={"jensenshannon": 0.9}, method="jensenshannon"),
     "at most 0.8326"),
    ("threshold not a number", dict(threshold="0.1", columns=["x"]), "threshold '0.1' .* not a finite number"),
    ("threshold for an unknown key", dict(threshold={"zz": 0.1}), "threshold key 'zz' is neither"),
    ("drift_share out of range", dict(drift_share=0), r"drift_share 0 is out of range.*\(0, 1\]"),
    ("unknown correction", dict(correction="holm"), "unknown correction 'holm'; allowed: none, bonferroni, fdr"),
    ("unknown column", dict(columns=["x", "nope"]), "columns names column 'nope'"),
    ("text forced numerical", dict(kinds={"t": "numerical"}), "column 't' holds text"),
    ("unknown kind", dict(kinds={"x": "ordinal"}), "unknown kind 'ordinal' for column 'x'"),
    ("bad n_jobs", dict(n_jobs=0), "n_jobs 0 must be a positive integer"),
]


@pytest.mark.parametrize("case,kwargs,message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_names_the_value(case, kwargs, message):
    args = {"reference": GOOD, "current": GOOD, **kwargs}
    with pytest.raises(DriftError, match=message):
        drift.compare(args.pop("reference"), args.pop("current"), **args)
