"""Covariance / dispersion matrices and ground-truth MI of BMI's Gaussian and Student-t tasks, without BMI.

The definitions reproduced are those of BMI 0.1.3 (`benchmark-mi`, Czyż et al., "Beyond Normal: On
the Evaluation of Mutual Information Estimators", NeurIPS 2023):

- `bmi.benchmark.tasks.multinormal.task_multinormal_{dense,sparse,2pair,lvm}`: the matrix given to
  `SplitMultinormal` (for sparse, 2pair and lvm the correlation matrix of
  `bmi.samplers.GaussianLVMParametrization`) and `SplitMultinormal.mutual_information`;
- `bmi.benchmark.tasks.student.task_student_{dense,sparse,2pair}`: the dispersion given to
  `SplitStudentT` and `SplitStudentT.mutual_information` (the Gaussian MI of the dispersion plus
  the df-dependent correction of Arellano-Valle et al., 2013).

BMI computes all of these in float64 numpy/scipy (no jax). The functions below perform the same
operations in the same order (`np.linalg.det` for the entropies, `scipy.special.gamma` then `log`
rather than `gammaln`, Python `**` on the caller's scalars), so the matrices and MI values are
*equal* to BMI's, not merely close; tests/test_families.py checks that with `np.array_equal` and
`==`. Do not "simplify" the arithmetic (e.g. to `slogdet` or `gammaln`): the published labels
depend on these exact bits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import digamma, gamma


def _check_dims(dx: int, dy: int) -> None:
    if dx < 1 or dy < 1:
        raise ValueError(f"dimensions must be >= 1, got dx={dx}, dy={dy}")


def _check_positive_definite(mat: np.ndarray) -> None:
    # BMI's test: every (possibly complex) eigenvalue from np.linalg.eigvals is > 0.
    if not np.all(np.linalg.eigvals(mat) > 0):
        raise ValueError("covariance / dispersion matrix is not positive-definite")


# ---------------------------------------------------------------------------
# Matrices


def dense(dx: int, dy: int, off_diag: float = 0.5) -> np.ndarray:
    """Unit diagonal, `off_diag` everywhere else (BMI's dense tasks)."""
    _check_dims(dx, dy)
    return np.eye(dx + dy) * (1 - off_diag) + off_diag


def lvm_covariance(
    dx: int,
    dy: int,
    n_interacting: int,
    alpha: float,
    lambd: float,
    beta: float = 0.0,
    eta: float = 0.0,
    epsilon: float = 1.0,
) -> np.ndarray:
    """Covariance of BMI's Gaussian latent-variable model with the same weights for X and Y.

    Every entry gets alpha^2 (shared latent), the X-X and Y-Y blocks beta^2, the diagonal epsilon^2;
    pair i < n_interacting gets lambd^2 on its two variances and its X_i-Y_i covariance; the other
    coordinates get eta^2 on their variance. The terms are added in this order, as BMI adds them.
    """
    _check_dims(dx, dy)
    k = n_interacting
    if not 0 <= k <= min(dx, dy):
        raise ValueError(f"n_interacting={k} must be between 0 and min(dx, dy) = {min(dx, dy)}")
    n = dx + dy
    cov = np.full((n, n), fill_value=alpha**2, dtype=float)
    cov[:dx, :dx] += beta**2
    cov[dx:, dx:] += beta**2
    diag = np.arange(n)
    cov[diag, diag] += epsilon**2
    pair_x = np.arange(k)
    pair_y = dx + pair_x
    cov[pair_x, pair_y] += lambd**2
    cov[pair_y, pair_x] += lambd**2
    cov[pair_x, pair_x] += lambd**2
    cov[pair_y, pair_y] += lambd**2
    rest = np.r_[np.arange(k, dx), np.arange(dx + k, n)]  # non-interacting X, then non-interacting Y
    cov[rest, rest] += eta**2
    return cov


def lvm(
    dx: int, dy: int, n_interacting: int, alpha: float, lambd: float, beta: float = 0.0, eta: float | None = None
) -> np.ndarray:
    """Correlation matrix of the latent-variable model (BMI's `task_multinormal_lvm`; eta defaults to lambd)."""
    eta = lambd if eta is None else eta
    cov = lvm_covariance(dx, dy, n_interacting, alpha, lambd, beta=beta, eta=eta)
    var = np.diag(cov)
    return cov / np.sqrt(np.outer(var, var))


def sparse(dx: int, dy: int, n_interacting: int = 2, strength: float = 2.0) -> np.ndarray:
    """`n_interacting` correlated pairs (X_i, Y_i), equal variances: the LVM with alpha = beta = 0 and
    lambd = eta = strength."""
    return lvm(dx, dy, n_interacting, alpha=0.0, lambd=strength, beta=0.0, eta=strength)


def two_pair(dx: int, dy: int, strength: float = 2.0) -> np.ndarray:
    """The sparse structure with two interacting pairs (BMI's 2pair tasks)."""
    return sparse(dx, dy, n_interacting=2, strength=strength)


MATRICES: dict[str, Callable[..., np.ndarray]] = {"dense": dense, "sparse": sparse, "2pair": two_pair, "lvm": lvm}
STUDENT_STRUCTURES = ("dense", "sparse", "2pair")  # BMI has no Student-t LVM task


def structure_matrix(structure: str, dx: int, dy: int, **params) -> np.ndarray:
    """The matrix of `structure` ("dense", "sparse", "2pair", "lvm") with BMI's task parameters."""
    try:
        make = MATRICES[structure]
    except KeyError:
        raise ValueError(f"unknown structure {structure!r}; known: {', '.join(MATRICES)}") from None
    return make(dx, dy, **params)


# ---------------------------------------------------------------------------
# Mutual information


def _normal_entropy(cov: np.ndarray) -> float:
    dim = cov.shape[0]
    return 0.5 * (np.log(np.linalg.det(cov)) + dim * (1 + np.log(2 * np.pi)))


def gaussian_mi(cov: np.ndarray, dx: int) -> float:
    """I(X; Y) in nats for (X, Y) ~ N(0, cov), X the first dx coordinates: H(X) + H(Y) - H(X, Y),
    each entropy from the determinant, clipped at 0 (as BMI's `SplitMultinormal`)."""
    cov = np.asarray(cov)
    mi = _normal_entropy(cov[:dx, :dx]) + _normal_entropy(cov[dx:, dx:]) - _normal_entropy(cov)
    return float(max(0.0, mi))


def _student_entropy(k: int, df: float):
    """Differential entropy of the standard k-dimensional Student-t with df degrees of freedom
    (Arellano-Valle et al. 2013, Eq. 7), evaluated as BMI does."""
    half_sum = 0.5 * (df + k)
    digamma_term = half_sum * (digamma(half_sum) - digamma(0.5 * df))
    log_term = -np.log(gamma(half_sum)) + np.log(gamma(0.5 * df)) + 0.5 * k * np.log(df * np.pi)
    return log_term + digamma_term


def student_mi_correction(df: float, dx: int, dy: int) -> float:
    """The part of a multivariate Student-t's MI that depends only on (df, dx, dy): h(dx) + h(dy) - h(dx + dy)."""
    return float(_student_entropy(dx, df) + _student_entropy(dy, df) - _student_entropy(dx + dy, df))


def student_mi(dispersion: np.ndarray, dx: int, df: float) -> float:
    """I(X; Y) for the multivariate t with this dispersion and df: the Gaussian MI of the dispersion
    plus the correction term."""
    dispersion = np.asarray(dispersion)
    return float(gaussian_mi(dispersion, dx) + student_mi_correction(df, dx, dispersion.shape[0] - dx))


# ---------------------------------------------------------------------------
# Tasks


def normal_task(structure: str, dx: int, dy: int, **params) -> tuple[np.ndarray, float]:
    """(covariance, MI) of BMI's `task_multinormal_<structure>(dx, dy, **params)`."""
    cov = structure_matrix(structure, dx, dy, **params)
    _check_positive_definite(cov)
    return cov, gaussian_mi(cov, dx)


def student_task(structure: str, dx: int, dy: int, df: float, **params) -> tuple[np.ndarray, float]:
    """(dispersion, MI) of BMI's `task_student_<structure>(dx, dy, df, **params)`."""
    if structure not in STUDENT_STRUCTURES:
        raise ValueError(f"no Student-t task with structure {structure!r} (BMI has {', '.join(STUDENT_STRUCTURES)})")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    disp = structure_matrix(structure, dx, dy, **params)
    _check_positive_definite(disp)
    return disp, student_mi(disp, dx, df)
