"""Gaussian reference: MI from canonical correlations.

For jointly Gaussian (x, y), I = -1/2 sum_i log(1 - rho_i^2) over the canonical
correlations rho_i; plugging in the sample covariance gives the maximum-likelihood
estimate, the efficiency reference on Gaussian families.

`method="bmi"` (default) reproduces BMI's `CCAMutualInformationEstimator`
(scikit-learn's iterative CCA, then per-component correlations). `method="exact"`
takes the canonical correlations from the SVD of the whitened cross-covariance:
closed form, faster, and equal to BMI's up to CCA's convergence tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np

from estimators.base import Estimate, Estimator
from estimators.registry import register

# A canonical correlation above this is 1 up to the SVD's rounding: an exact linear relation, or rows so
# extreme (a Student-t at df < 1 reaches 1e12) that they alone set the covariance.
_RHO_EXACT = 1.0 - 1e-13


def canonical_correlations(x: np.ndarray, y: np.ndarray, shrinkage: float = 0.0) -> np.ndarray:
    """Canonical correlations of (x, y) from an SVD of Sxx^-1/2 Sxy Syy^-1/2.

    `shrinkage` in [0, 1) pulls each within-block correlation matrix toward the
    identity, which keeps the estimate finite when n <= d.
    """
    x = x - x.mean(0)
    y = y - y.mean(0)
    sx, sy = x.std(0), y.std(0)
    sx[sx == 0] = 1.0
    sy[sy == 0] = 1.0
    x, y = x / sx, y / sy
    n = x.shape[0]
    cxx, cyy, cxy = x.T @ x / n, y.T @ y / n, x.T @ y / n
    if shrinkage:
        cxx = (1 - shrinkage) * cxx + shrinkage * np.eye(len(cxx))
        cyy = (1 - shrinkage) * cyy + shrinkage * np.eye(len(cyy))

    def inv_sqrt(c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(c)
        w = np.maximum(w, 1e-12)
        return (v / np.sqrt(w)) @ v.T

    m = inv_sqrt(cxx) @ cxy @ inv_sqrt(cyy)
    return np.linalg.svd(m, compute_uv=False)[: min(x.shape[1], y.shape[1])]


@register
class GaussianCCA(Estimator):
    """Gaussian (CCA) MI. Parameters: method "bmi" | "exact"; scale (as BMI's)."""

    name = "gaussian"
    min_n = 3

    def __init__(self, method: str = "bmi", scale: bool = True) -> None:
        if method not in ("bmi", "exact"):
            raise ValueError(f"method must be 'bmi' or 'exact', got {method!r}")
        super().__init__(method=method, scale=scale)

    def _check_dims(self, dx: int, dy: int) -> None:
        pass

    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
        if n <= dx + dy:
            # The sample covariance is singular: canonical correlations are 1 and MI infinite.
            return Estimate.failed(f"n = {n} <= dx + dy = {dx + dy}: the Gaussian MLE is infinite")
        if np.any(np.ptp(x, 0) == 0) or np.any(np.ptp(y, 0) == 0):
            # A constant column carries no information; drop it rather than divide by zero.
            x, y = x[:, np.ptp(x, 0) > 0], y[:, np.ptp(y, 0) > 0]
            if x.shape[1] == 0 or y.shape[1] == 0:
                return Estimate(mi=0.0, info={"note": "a block is constant: MI 0"})
        if self.params["method"] == "exact":
            rho = canonical_correlations(x, y)
            if rho.max() > _RHO_EXACT:  # as method="bmi": an exact linear relation has infinite Gaussian MI
                return Estimate.failed(
                    "canonical correlation of 1 within 1e-13 (a linear relation between x "
                    "and y, or a few extreme rows dominating the covariance): the Gaussian "
                    "MLE is infinite"
                )
            return Estimate(mi=float(-0.5 * np.log1p(-(rho**2)).sum()), info={"method": "exact"})
        from sklearn.cross_decomposition import CCA

        k = min(x.shape[1], y.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns on slow convergence of its NIPALS loop
            xs, ys = CCA(n_components=k, scale=self.params["scale"]).fit_transform(x, y)
        xs, ys = xs.reshape(n, -1), ys.reshape(n, -1)
        rho = np.array([np.corrcoef(xs[:, i], ys[:, i])[0, 1] for i in range(k)])
        # Match BMI: -1/2 log(1 - r^2) per component, no clipping of r.
        mi = float(np.sum(-0.5 * np.log(1 - rho**2)))
        if not np.isfinite(mi):
            return Estimate.failed("canonical correlation of 1: the Gaussian MLE is infinite")
        return Estimate(mi=mi, info={"method": "bmi"})
