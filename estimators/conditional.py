"""Conditional mutual information I(X; Y | Z).

    >>> from estimators.conditional import conditional_mi
    >>> conditional_mi(x, y, z).mi                          # Frenzel-Pompe KSG, nats
    >>> conditional_mi(x, y, z, estimator="gaussian")       # closed form for Gaussian data
    >>> conditional_mi(x, y, z, estimator="mist")           # chain rule: I(X; Y,Z) - I(X; Z)

Three methods, chosen by `estimator`:

- "ksg": the conditional KSG of Frenzel and Pompe (2007, PRL 99, 204101). Per point, eps is the
  distance to its k-th neighbour in the joint (x, y, z) space; n_xz, n_yz, n_z count the other
  points strictly inside eps in the (x, z), (y, z) and z subspaces, and

      I(X; Y | Z) = psi(k) - < psi(n_xz + 1) + psi(n_yz + 1) - psi(n_z + 1) >.

  The metric is our KSG's (`estimators.ksg`): columns standardised, Euclidean within each of x, y
  and z, max across them (`metric="chebyshev"`: max-norm everywhere). With z constant this is
  exactly our KSG's I(X; Y) (n_z = n - 1 for every point).
- "gaussian": 1/2 log(det S_xz det S_yz / (det S_z det S_xyz)) of the sample covariance, the
  maximum-likelihood estimate for jointly Gaussian data.
- any other registered estimator (and "ksg" or "gaussian" with `chain_rule=True`): the chain rule
  I(X; Y | Z) = I(X; Y, Z) - I(X; Z), each term estimated by that estimator. The difference of two
  estimates carries both their biases, which need not cancel; it is reported as is, never clipped.

Ties. KSG counts points *strictly* inside eps, so a point at exactly eps is a tie that rounding
must not decide. Distances come from one matmul per block (fast, but rounded); a row with another
distance within rounding of its eps (or with eps within rounding of 0) is recomputed exactly, from
the raw column differences divided by the column scale: equal differences in the data then give
equal distances, and ties are decided as in exact arithmetic (points at eps are not counted).
A row with k or more exact copies (x, y and z all equal) has eps = 0: nothing is strictly inside,
the digamma terms are -inf and the estimate is undefined, so `ksg_cmi` raises `ValueError` and
`conditional_mi` returns a failed `Estimate` naming how many rows are affected. Repeated values
in some columns only (a discrete z, say) are fine: they are exact ties, counted exactly.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from scipy.special import digamma
from sklearn.preprocessing import StandardScaler

from estimators.base import METHOD_ERRORS, Estimate, Estimator
from estimators.bootstrap import bootstrap_estimate
from estimators.ksg import _BLOCK_ELEMS, _TIE_TOL, _augment
from estimators.units import check_unit
from estimators.validation import as_2d, check_values, column_names, validate_pair

__all__ = ["conditional_mi", "gaussian_cmi", "ksg_cmi", "CHAIN_RULE"]

CHAIN_RULE = "chain rule: I(X;Y,Z) - I(X;Z)"
_KSG_PARAMS = ("k", "metric", "standardize", "clip", "n_bootstrap", "level", "seed")
# The correlation matrix of (x, y, z) with an eigenvalue below this is singular up to rounding: a
# column is a linear function of others and the Gaussian CMI is 0/0.
_MIN_EIG = 1e-12
# Groups of at most this many columns get exact column differences rather than a matmul (`_Blocks`).
_NARROW = 3


# ---------------------------------------------------------------------------
# Input


def _validate_z(z: Any, n: int) -> np.ndarray:
    """z as a float64 (n, dz) array, or a ValueError naming z (the checks x and y get)."""
    z = as_2d(z, "z")
    if z.shape[0] != n:
        raise ValueError(f"z must have the same number of rows (n) as x and y: x and y have {n}, z has {z.shape[0]}")
    check_values(z, "z")
    return z


def _validate(x: Any, y: Any, z: Any, min_n: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = validate_pair(x, y, min_n=min_n)
    return x, y, _validate_z(z, x.shape[0])


def _constant(a: np.ndarray) -> bool:
    return bool((a == a[0]).all())


# ---------------------------------------------------------------------------
# Frenzel-Pompe KSG


class _Blocks:
    """The columns of x, y and z as groups within which distances are Euclidean (one group per
    variable, or one per column for the max-norm), for both passes of `_fp_counts`."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, metric: str, standardize: bool) -> None:
        self.n = x.shape[0]
        self.raw, self.inv_scale, self.std = [], [], []
        for a in (x, y, z):
            if standardize:  # StandardScaler, as `estimators.standardise`: our KSG's scaling exactly
                sc = StandardScaler().fit(a)
                std, scale = sc.transform(a), sc.scale_
            else:
                std, scale = a - a.mean(0), np.ones(a.shape[1])
            self.raw.append(torch.from_numpy(np.ascontiguousarray(a.T)))  # (d, n): one column per row
            self.inv_scale.append((1.0 / scale).tolist())
            self.std.append(std)
        # groups[v]: the column lists of variable v (0 = x, 1 = y, 2 = z)
        self.groups = [
            [list(range(a.shape[1]))] if metric == "euclidean" else [[j] for j in range(a.shape[1])] for a in (x, y, z)
        ]
        # Wide groups go through one matmul of augmented rows (fast, but rounded: |a|^2 + |b|^2 - 2ab
        # cancels); narrow ones through column differences, which are as cheap at this width and
        # exact on ties. Narrow distances are also the small ones (d <= 3 at n = 5000: neighbours at
        # 1e-4), where the matmul's rounding would flag most rows as possible ties.
        self.augmented = {
            (v, i): _augment(torch.from_numpy(np.ascontiguousarray(self.std[v][:, g])))
            for v in range(3)
            for i, g in enumerate(self.groups[v])
            if len(g) > _NARROW
        }
        wide = [self.std[v][:, g] for v, i in self.augmented for g in [self.groups[v][i]]]
        sq = sum(((w * w).sum(1) for w in wide), np.zeros(self.n))
        self.sq_wide = torch.from_numpy(sq).unsqueeze(1)  # squared norm of the matmul columns per row


def _group_sq(b: _Blocks, v: int, i: int, rows: torch.Tensor, exact: bool) -> torch.Tensor:
    """Squared distances (len(rows), n) within group i of variable v. Exact: summed column by column
    from ((a_r - a_j) / scale)^2, elementwise, so that equal differences in the data give equal
    distances and a point's distance to itself is 0."""
    if not exact and (v, i) in b.augmented:
        left, right = b.augmented[v, i]
        g = (left[rows] @ right.T).clamp_(min=0.0)  # clamp cancellation negatives
        g[torch.arange(len(rows)), rows] = 0.0  # a point's distance to itself is exactly 0
        return g
    acc = None
    for j in b.groups[v][i]:
        col = b.raw[v][j]
        diff = (col[rows].unsqueeze(1) - col.unsqueeze(0)).mul_(b.inv_scale[v][j])
        diff.mul_(diff)
        acc = diff if acc is None else acc.add_(diff)
    return acc


def _block_counts(
    b: _Blocks, rows: torch.Tensor, k: int, exact: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n_xz, n_yz, n_z) counts (len(rows), 3), eps^2 (len(rows),) and a mask of rows whose counts
    rounding may have decided (always False when exact)."""
    d2 = []
    for v in range(3):
        acc = None
        for i in range(len(b.groups[v])):
            g = _group_sq(b, v, i, rows, exact)
            acc = g if acc is None else torch.maximum(acc, g)
        d2.append(acc)
    xz, yz = torch.maximum(d2[0], d2[2]), torch.maximum(d2[1], d2[2])
    joint = torch.maximum(xz, d2[1])
    # Index k of the ascending order (index 0 is the point itself, or a copy): the k-th neighbour.
    eps2 = joint.topk(k + 1, dim=1, largest=False, sorted=True).values[:, k : k + 1]
    if exact or not b.augmented:  # exact values: strict counting below eps^2 is exact; copies redone to raise
        lo, redo = eps2, eps2[:, 0] <= 0
    else:
        tol = _TIE_TOL * (b.sq_wide[rows] + float(b.sq_wide.max()))
        lo, hi = eps2 - tol, eps2 + tol
        # Of the k-th neighbour's distances in x, y and z only one (the largest) sits at eps^2. Any
        # other within rounding of eps^2 is a possible tie, and eps^2 within rounding of 0 a possible
        # copy: those rows are redone exactly. Elsewhere nothing lies in [eps^2 - tol, eps^2 + tol]
        # but that one value, so counting below eps^2 - tol is counting strictly below eps^2.
        near = sum(((m >= lo) & (m <= hi)).sum(1) for m in d2)
        redo = (near > 1) | (lo[:, 0] <= 0)
    counts = torch.stack([(m < lo).sum(1) - 1 for m in (xz, yz, d2[2])], 1)
    return counts, eps2[:, 0], redo


def _fp_counts(b: _Blocks, k: int) -> np.ndarray:
    """n_xz, n_yz, n_z per point, (n, 3). Raises ValueError when a row has k or more exact copies."""
    n = b.n
    counts = np.empty((n, 3), dtype=np.int64)
    redo = np.zeros(n, dtype=bool)
    # Six (block, n) matrices live at once: keep each near the size of our KSG's joint one.
    block = max(1, _BLOCK_ELEMS // (2 * n))
    for s in range(0, n, block):
        rows = torch.arange(s, min(n, s + block))
        c, _, r = _block_counts(b, rows, k, exact=False)
        counts[s : s + len(rows)], redo[s : s + len(rows)] = c.numpy(), r.numpy()
    todo = np.flatnonzero(redo)
    copies = 0
    for s in range(0, len(todo), block):
        rows = torch.from_numpy(todo[s : s + block])
        c, eps2, _ = _block_counts(b, rows, k, exact=True)
        counts[rows.numpy()] = c.numpy()
        copies += int((eps2 == 0).sum())
    if copies:
        raise ValueError(
            f"{copies} row(s) have at least k = {k} exact copies (x, y and z all equal): their k-th "
            "neighbour is at distance 0, nothing is strictly closer, and the KSG estimate is undefined; "
            "use a larger k, drop the repeated rows, or add noise deliberately"
        )
    return counts


def _ksg_point(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    k: int = 5,
    metric: str = "euclidean",
    standardize: bool = True,
    clip: bool = True,
) -> float:
    """The Frenzel-Pompe estimate on validated arrays."""
    if x.shape[0] < k + 1:
        raise ValueError(f"too few rows: n = {x.shape[0]}, KSG with k = {k} needs at least {k + 1}")
    c = _fp_counts(_Blocks(x, y, z, metric, standardize), k)
    cmi = float(digamma(k) - (digamma(c[:, 0] + 1) + digamma(c[:, 1] + 1) - digamma(c[:, 2] + 1)).mean())
    return max(0.0, cmi) if clip else cmi


def _check_ksg_params(k: int, metric: str) -> int:
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if metric not in ("euclidean", "chebyshev"):
        raise ValueError(f"metric must be 'euclidean' or 'chebyshev', got {metric!r}")
    return int(k)


def ksg_cmi(
    x: Any,
    y: Any,
    z: Any,
    k: int = 5,
    metric: str = "euclidean",
    standardize: bool = True,
    clip: bool = True,
) -> float:
    """I(X; Y | Z) in nats by the Frenzel-Pompe conditional KSG (see the module docstring).

    k: neighbours; metric: "euclidean" (within x, y, z; max across, our KSG's) or "chebyshev";
    standardize: columns to unit variance first; clip: max(0, .). Invalid input, and rows with k
    or more exact copies, raise ValueError."""
    k = _check_ksg_params(k, metric)
    x, y, z = _validate(x, y, z, min_n=k + 1)
    return _ksg_point(x, y, z, k, metric, standardize, clip)


# ---------------------------------------------------------------------------
# Gaussian closed form


def _gaussian_point(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    n, d = x.shape[0], x.shape[1] + y.shape[1] + z.shape[1]
    if n <= d:
        raise ValueError(
            f"n = {n} <= dx + dy + dz = {d}: the sample covariance is singular, the Gaussian CMI undefined"
        )
    # Constant columns carry nothing and would make the covariance singular; conditioning on a
    # constant z is no conditioning (every block may end up empty: slogdet of a 0 x 0 matrix is 0).
    x, y, z = (a[:, np.ptp(a, 0) > 0] for a in (x, y, z))
    if x.shape[1] == 0 or y.shape[1] == 0:
        return 0.0
    data = np.hstack([x, y, z])
    data = (data - data.mean(0)) / data.std(0)  # the correlation matrix: better conditioned, same CMI
    c = data.T @ data / n
    if np.linalg.eigvalsh(c)[0] < _MIN_EIG:
        raise np.linalg.LinAlgError(
            "the columns of (x, y, z) are linearly dependent (the correlation matrix is singular): "
            "the Gaussian CMI is 0/0; drop redundant columns"
        )
    dx, dy = x.shape[1], y.shape[1]
    ix, iy, iz = np.arange(dx), np.arange(dx, dx + dy), np.arange(dx + dy, data.shape[1])

    def logdet(idx: np.ndarray) -> float:
        return float(np.linalg.slogdet(c[np.ix_(idx, idx)])[1])  # positive definite: checked above

    xz, yz = np.r_[ix, iz], np.r_[iy, iz]
    return 0.5 * (logdet(xz) + logdet(yz) - logdet(iz) - logdet(np.r_[ix, iy, iz]))


def gaussian_cmi(x: Any, y: Any, z: Any) -> float:
    """I(X; Y | Z) in nats for jointly Gaussian data: 1/2 log(det S_xz det S_yz / (det S_z det S_xyz))
    of the sample covariance (slogdet; the ratio does not depend on ddof or on column scales).
    Raises ValueError when n <= dx + dy + dz and LinAlgError when columns are linearly dependent."""
    return _gaussian_point(*_validate(x, y, z))


# ---------------------------------------------------------------------------
# The Estimate


def conditional_mi(
    x: Any,
    y: Any,
    z: Any,
    estimator: str | Estimator = "ksg",
    unit: str = "nats",
    *,
    chain_rule: bool | None = None,
    **params: Any,
) -> Estimate:
    """I(X; Y | Z) as an `Estimate` (in `unit`: "nats" or "bits").

    estimator:
      - "ksg" (default): Frenzel-Pompe conditional KSG. params: k (5), metric ("euclidean" |
        "chebyshev"), standardize (True), clip (True: max(0, .); a negative value before clipping is
        in info["unclipped_nats"]), n_bootstrap (0; > 0: a bootstrap interval at `level`, 0.9, centred on
        the estimate, as our KSG's), seed (0).
      - "gaussian": the closed form for jointly Gaussian data (no params). n <= dx + dy + dz is a
        failed Estimate.
      - any other registered name (mist, mist_qr, infonet, mine, ...): the chain rule
        I(X; Y, Z) - I(X; Z), both terms from `estimators.get(estimator, **params)` (one
        `estimate_batch` call when it has a batch path). The difference carries both estimates'
        biases, which need not cancel, and is reported as is: never clipped, info["negative"] is
        True when it is below 0. The two estimates are in info["parts"]. When both have intervals
        at the same level, the interval is [lo1 - hi2, hi1 - lo2]: conservative (if each part covers
        at its level, the difference is covered with probability at least 1 - 2 (1 - level)).
      - an `Estimator` instance: the chain rule with it (params then go to its constructor, not
        here); reusing one instance spares a network's loading on every call.
    chain_rule: None (default): the direct method for "ksg" and "gaussian", the chain rule for the
      others; True: the chain rule for any estimator; False: a direct method or ValueError.

    A constant x or y (every row equal) gives 0 exactly (info["exact"]). Invalid input raises
    ValueError naming x, y or z; a method failure on valid input is a failed Estimate.
    """
    check_unit(unit)  # before any work: a typo should not cost an estimate
    names = {f"{w}_columns": c for a, w in ((x, "x"), (y, "y"), (z, "z")) if (c := column_names(a)) is not None}
    if isinstance(estimator, Estimator):
        if params:
            raise TypeError(f"parameters {sorted(params)} belong to the estimator's constructor, not here")
        name = estimator.name or type(estimator).__name__
        direct = False
    else:
        name = estimator
        direct = estimator in ("ksg", "gaussian") and not chain_rule
    if chain_rule is False and not direct:
        raise ValueError(
            f"no direct CMI method for {name!r} (there is one for 'ksg' and 'gaussian'); use the chain rule"
        )
    if direct and estimator == "ksg":
        unknown = sorted(set(params) - set(_KSG_PARAMS))
        if unknown:
            raise TypeError(f"conditional_mi(estimator='ksg') takes {list(_KSG_PARAMS)}, got {unknown}")
        k = _check_ksg_params(params.get("k", 5), params.get("metric", "euclidean"))
        n_bootstrap, level = int(params.get("n_bootstrap", 0)), params.get("level", 0.9)
        if n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        min_n = k + 1
    elif direct and params:
        raise TypeError(f"conditional_mi(estimator='gaussian') takes no parameters, got {sorted(params)}")
    else:
        min_n = 2
    x, y, z = _validate(x, y, z, min_n=min_n)

    t0 = time.perf_counter()
    const = next((w for a, w in ((x, "x"), (y, "y")) if _constant(a)), None)
    if const is not None:
        est = Estimate(mi=0.0, info={"exact": f"{const} is constant: I(X; Y | Z) = 0"})
    elif not direct:
        est = _chain(x, y, z, estimator, params)
    else:
        method = _ksg_estimate if estimator == "ksg" else _gaussian_estimate
        try:
            est = method(x, y, z, **params)
        except METHOD_ERRORS as err:
            est = Estimate.failed(f"{type(err).__name__}: {err}")
        if est.ok and not math.isfinite(est.mi):
            est = Estimate.failed(f"non-finite estimate {est.mi!r}")
    est.seconds = time.perf_counter() - t0
    est.info.setdefault("estimator", name)
    est.info.setdefault("quantity", "cmi")
    est.info.update(names)
    return _in_unit(est, unit)


def _ksg_estimate(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    k: int = 5,
    metric: str = "euclidean",
    standardize: bool = True,
    clip: bool = True,
    n_bootstrap: int = 0,
    level: float = 0.9,
    seed: int = 0,
) -> Estimate:
    k = int(k)
    raw = _ksg_point(x, y, z, k, metric, standardize, clip=False)
    cmi = max(0.0, raw) if clip else raw
    info: dict[str, Any] = {"method": "Frenzel-Pompe conditional KSG", "k": k, "metric": metric}
    if clip and raw < 0:
        info["unclipped_nats"] = raw
    if not n_bootstrap:
        return Estimate(mi=cmi, info=info)
    dy = y.shape[1]
    yz = np.hstack([y, z])  # bootstrap_values resamples the rows of two arrays: y and z travel together

    def point(xb: np.ndarray, yzb: np.ndarray) -> float:
        return _ksg_point(xb, yzb[:, :dy], yzb[:, dy:], k, metric, standardize, clip)

    return bootstrap_estimate(
        point, cmi, x, yz, info, n=int(n_bootstrap), level=level, seed=seed, min_rows=k + 1, clip=clip
    )


def _gaussian_estimate(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Estimate:
    n, d = x.shape[0], x.shape[1] + y.shape[1] + z.shape[1]
    if n <= d:
        return Estimate.failed(f"n = {n} <= dx + dy + dz = {d}: the Gaussian CMI is undefined")
    return Estimate(mi=_gaussian_point(x, y, z), info={"method": "Gaussian closed form (log-det)"})


def _chain(x: np.ndarray, y: np.ndarray, z: np.ndarray, estimator: str | Estimator, params: dict[str, Any]) -> Estimate:
    from estimators.registry import get  # the registry scans the package: only when needed

    est = estimator if isinstance(estimator, Estimator) else get(estimator, **params)
    yz = np.hstack([y, z])
    if est.has_batch_path:
        joint, marginal = est.estimate_batch([(x, yz), (x, z)])
    else:
        joint, marginal = est.estimate(x, yz), est.estimate(x, z)
    info: dict[str, Any] = {"method": CHAIN_RULE, "parts": {"I(X;Y,Z)": joint, "I(X;Z)": marginal}}
    quantities = {est.quantity(x.shape[1], yz.shape[1]), est.quantity(x.shape[1], z.shape[1])}
    if quantities != {"mi"}:  # e.g. InfoNet's sliced MI beyond 1-D: the difference is no CMI
        info["quantity"] = "difference of " + " and ".join(sorted(quantities))
    for what, part in info["parts"].items():
        if not part.ok:
            return Estimate.failed(f"chain rule: {what} failed: {part.info.get('error')}", **info)
    cmi = joint.mi - marginal.mi
    if cmi < 0:  # reported as is: the sign shows the two estimates' biases did not cancel
        info["negative"] = True
    lower = upper = None
    level = joint.info.get("interval_level")
    both = None not in (joint.lower, joint.upper, marginal.lower, marginal.upper)
    if both and level is not None and level == marginal.info.get("interval_level"):
        lower, upper = joint.lower - marginal.upper, joint.upper - marginal.lower
        info.update(
            interval_level=level,
            interval_coverage_at_least=1 - 2 * (1 - level),
            interval=(
                "conservative: [lo(I(X;Y,Z)) - hi(I(X;Z)), hi(I(X;Y,Z)) - lo(I(X;Z))], a union bound over "
                f"the two parts' intervals; coverage at least 1 - 2 (1 - level) = {1 - 2 * (1 - level):.3g} "
                "if each covers at its level"
            ),
        )
    return Estimate(mi=cmi, lower=lower, upper=upper, info=info)


def _in_unit(est: Estimate, unit: str) -> Estimate:
    """`est` in `unit` (`Estimate.to`), the chain rule's parts too (they are Estimates, each with its
    unit); other values in `info` stay in nats, the library's convention."""
    parts = est.info.get("parts")
    if parts:
        est.info["parts"] = {w: p if p.unit == unit else p.to(unit) for w, p in parts.items()}
    return est if est.unit == unit else est.to(unit)
