"""Statistical kernels: the numbers behind every drift method, computed from summaries.

Each kernel reproduces a scipy (or Evidently) formula on sorted distinct values and their
counts, so a test never needs the raw rows: the CDF gaps behind Kolmogorov-Smirnov and
Wasserstein, Sturges binning, Jensen-Shannon, PSI, the chi-squared tests and the Z-test.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from mlnb.drift.summaries import ColumnSummary

#: Evidently bins numerical columns for PSI and Jensen-Shannon above this many distinct values.
BIN_MIN_UNIQUE = 20
#: scipy's ks_2samp computes exact p-values while both samples have at most this many rows.
KS_EXACT_MAX_N = 10_000


def _cdf_gaps(u: np.ndarray, wu: np.ndarray, v: np.ndarray, wv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|F_u - F_v|`` on each interval between consecutive points of the merged support.

    ``u`` and ``v`` are sorted, ``wu`` and ``wv`` their counts. A stable argsort of the two
    concatenated runs is a linear-time merge, cheaper than scipy's two searchsorted passes.
    The gap is accumulated in integers (``n1 * n2 * (F_u - F_v)``), so it is exact before
    the one final division. Returns ``(gap, dx)``, both of length ``len(u) + len(v) - 1``;
    where a value occurs on both sides the first of the tied positions is not a real value
    of the gap, but its ``dx`` is 0, so integrals ignore it and maxima must skip it.
    """
    n1, n2 = int(np.sum(wu)), int(np.sum(wv))
    nu = u.size
    x = np.concatenate((u, v))
    perm = np.argsort(x, kind="stable")
    merged = x.take(perm)
    dx = np.diff(merged)
    # Buffers are reused below: fresh memory costs page faults, which are slow in VMs.
    if n1 * n2 < 2**62:
        inc = x.view(np.int64)
        np.multiply(wu, n2, out=inc[:nu], casting="unsafe")
        np.multiply(wv, -n1, out=inc[nu:], casting="unsafe")
        gap = inc.take(perm, out=merged.view(np.int64))
        scale = float(n1) * float(n2)
    else:  # astronomically many rows: float increments, still well within 1e-9
        np.divide(wu, n1, out=x[:nu], casting="unsafe")
        np.divide(wv, -n2, out=x[nu:], casting="unsafe")
        gap = x.take(perm, out=merged)
        scale = 1.0
    del perm
    np.cumsum(gap, out=gap)
    gap = gap[:-1]
    np.abs(gap, out=gap)
    out = x[:-1]
    np.divide(gap, scale, out=out, casting="unsafe")
    return out, dx


def _integral(gap: np.ndarray, dx: np.ndarray) -> float:
    # Not np.dot: BLAS would wake its worker threads, which then spin and steal the cores
    # the column threads need (measured: ~1 s of CPU on the 1M-row benchmark).
    np.multiply(gap, dx, out=gap)
    return float(gap.sum())


def _w1(u, wu, v, wv) -> float:
    """First Wasserstein distance between two weighted samples (scipy's formula)."""
    gap, dx = _cdf_gaps(u, wu, v, wv)
    return _integral(gap, dx)


def _ks_and_w1(u, wu, v, wv) -> tuple[float, float]:
    """Largest CDF gap (the KS statistic) and the Wasserstein distance."""
    gap, dx = _cdf_gaps(u, wu, v, wv)
    complete = gap[dx != 0]  # skip the first of tied positions
    d = float(complete.max()) if complete.size else 0.0
    return d, _integral(gap, dx)


def _ks_test(ref: ColumnSummary, cur: ColumnSummary) -> tuple[float, float]:
    """KS statistic and p-value, as scipy.stats.ks_2samp(method="auto")."""
    if max(ref.n, cur.n) <= KS_EXACT_MAX_N:
        # scipy's exact p-value; repeating the distinct values rebuilds the sorted sample.
        res = stats.ks_2samp(np.repeat(ref.values, ref.counts), np.repeat(cur.values, cur.counts))
        return float(res.statistic), float(res.pvalue)
    d, _ = _ks_and_w1(ref.values, ref.counts, cur.values, cur.counts)
    m, n = sorted((float(ref.n), float(cur.n)), reverse=True)
    p = stats.kstwo.sf(d, np.round(m * n / (m + n)))
    return d, float(np.clip(p, 0.0, 1.0))


def _aligned_counts(ref: ColumnSummary, cur: ColumnSummary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of every value present on either side, in the same (sorted) order."""
    keys = np.union1d(ref.values, cur.values)
    rc = np.zeros(keys.size)
    cc = np.zeros(keys.size)
    rc[np.searchsorted(keys, ref.values)] = ref.counts
    cc[np.searchsorted(keys, cur.values)] = cur.counts
    return keys, rc, cc


def sturges_edges(vmin: float, vmax: float, size: int, integer: bool = False) -> np.ndarray:
    """``np.histogram_bin_edges(data, bins="sturges")`` from the data's min, max and size.

    Lets a profile bin a sample it no longer holds, with the very edges numpy would compute.
    """
    first, last = float(vmin), float(vmax)
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (float(vmax) - float(vmin)) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def _bin_counts(side: ColumnSummary, edges: np.ndarray) -> np.ndarray:
    """Rows per bin, as np.histogram: [e_i, e_i+1), the last bin closed."""
    cum = np.concatenate(([0.0], np.cumsum(side.counts, dtype=np.float64)))
    idx = np.searchsorted(side.values, edges, side="left")
    idx[-1] = np.searchsorted(side.values, edges[-1], side="right")
    return np.diff(cum[idx])


def _shares(ref: ColumnSummary, cur: ColumnSummary, kind: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Reference and current counts per bin or value, as Evidently's get_binned_data."""
    if ref.numeric and kind == "numerical" and ref.n_unique > BIN_MIN_UNIQUE:
        edges = sturges_edges(
            min(ref.vmin, cur.vmin), max(ref.vmax, cur.vmax), ref.n + cur.n,
            integer=ref.integer and cur.integer,
        )
        return _bin_counts(ref, edges), _bin_counts(cur, edges), True
    _, rc, cc = _aligned_counts(ref, cur)
    return rc, cc, False


def _jensenshannon(rc: np.ndarray, cc: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon(rc, cc), natural log."""
    p = rc / rc.sum()
    q = cc / cc.sum()
    m = (p + q) / 2.0
    js = special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()
    return float(np.sqrt(max(js, 0.0) / 2.0))


def _fill_zeroes(share: np.ndarray) -> np.ndarray:
    """Evidently's replacement of empty shares, which keeps PSI finite."""
    nonzero = share[share != 0]
    low = nonzero.min()
    return np.where(share == 0, low / 10**6 if low <= 0.0001 else 0.0001, share)


def _psi(rc: np.ndarray, cc: np.ndarray) -> float:
    r = _fill_zeroes(rc / rc.sum())
    c = _fill_zeroes(cc / cc.sum())
    return float(np.sum((r - c) * np.log(r / c)))


def _chisquare(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """scipy.stats.chisquare(current counts, reference counts scaled to the current total)."""
    if rc.size < 2:
        return 0.0, 1.0
    expected = rc * (cc.sum() / rc.sum())
    if np.any((expected == 0) & (cc > 0)):
        return math.inf, 0.0
    stat = float(np.sum((cc - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, rc.size - 1))


def _chi2_contingency(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """scipy.stats.chi2_contingency([rc, cc]) with its defaults (Yates for 1 degree)."""
    if rc.size < 2:
        return 0.0, 1.0
    observed = np.vstack((rc, cc))
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    dof = rc.size - 1
    if dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, dof))


def _z_test(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """Evidently's two-proportion Z-test: share of the first value against the rest."""
    n1, n2 = rc.sum(), cc.sum()
    if rc.size < 2:  # one value, the same on both sides
        return 0.0, 1.0
    p1 = (n1 - rc[0]) / n1
    p2 = (n2 - cc[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    # sf instead of Evidently's 1 - cdf: the same number, without cancellation for tiny p.
    return float(z), float(2 * stats.norm.sf(abs(z)))
