"""Jointly Gaussian (X, Y, Z) with analytic conditional MI I(X; Y | Z).

    >>> cov, cmi = gaussian_cmi_task(dx=2, dy=2, dz=3, strength=1.0, seed=0)
    >>> x, y, z = sample(cov, 2, 2, 3, n=1000, rng=np.random.default_rng(0))

The model, with independent standard normal Z (dz), e_x (dx) and e_y (dy):

    X = A Z + e_x
    Y = B Z + C X + e_y

A and B (entries N(0, mediation^2 / dz)) make X and Y dependent through Z; C (entries
N(0, strength^2 / dx)) is the direct X -> Y path. Given Z, Y = C e_x + e_y + (a function of Z), so

    I(X; Y | Z) = 1/2 logdet(I + C C'),

0 exactly at strength = 0 (Y depends on X only through Z), while I(X; Y) > 0 through A and B.
`analytic_cmi` evaluates the log-det formula on any covariance; the task's value is that formula on
its population covariance (equal to the expression above up to rounding). The covariance is over
(X, Y, Z) in that order. For one seed, A, B and the direction of C do not depend on `strength`:
a sweep over strength scales only the direct path.
"""

from __future__ import annotations

import numpy as np


def _check_dims(dx: int, dy: int, dz: int) -> None:
    if min(dx, dy, dz) < 1:
        raise ValueError(f"dimensions must be >= 1, got dx={dx}, dy={dy}, dz={dz}")


def _logdet(cov: np.ndarray, idx: np.ndarray) -> float:
    sign, logdet = np.linalg.slogdet(cov[np.ix_(idx, idx)])
    if sign <= 0:
        raise ValueError("covariance is not positive-definite")
    return float(logdet)


def analytic_cmi(cov: np.ndarray, dx: int, dy: int, dz: int) -> float:
    """I(X; Y | Z) in nats for (X, Y, Z) ~ N(0, cov), blocks in that order:
    1/2 log(det S_xz det S_yz / (det S_z det S_xyz))."""
    _check_dims(dx, dy, dz)
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (dx + dy + dz,) * 2:
        raise ValueError(f"covariance has shape {cov.shape}, expected {(dx + dy + dz,) * 2}")
    ix, iy, iz = np.arange(dx), np.arange(dx, dx + dy), np.arange(dx + dy, dx + dy + dz)
    return 0.5 * (
        _logdet(cov, np.r_[ix, iz]) + _logdet(cov, np.r_[iy, iz]) - _logdet(cov, iz) - _logdet(cov, np.r_[ix, iy, iz])
    )


def analytic_mi(cov: np.ndarray, dx: int, dy: int) -> float:
    """I(X; Y) in nats, the first dx + dy coordinates of cov: what CMI is compared with."""
    cov = np.asarray(cov, dtype=np.float64)
    ix, iy = np.arange(dx), np.arange(dx, dx + dy)
    return 0.5 * (_logdet(cov, ix) + _logdet(cov, iy) - _logdet(cov, np.r_[ix, iy]))


def mixing(dx: int, dy: int, dz: int, strength: float, seed: int, mediation: float = 1.0) -> np.ndarray:
    """W with (X, Y, Z) = W (Z, e_x, e_y): the model's linear map, (dx + dy + dz, dz + dx + dy)."""
    _check_dims(dx, dy, dz)
    if strength < 0 or mediation < 0:
        raise ValueError(f"strength and mediation must be >= 0, got {strength}, {mediation}")
    rng = np.random.default_rng(seed)
    # Drawn in a fixed order at unit scale, then scaled: the same seed gives the same structure at
    # every strength.
    a = rng.standard_normal((dx, dz)) * (mediation / np.sqrt(dz))
    b = rng.standard_normal((dy, dz)) * (mediation / np.sqrt(dz))
    c = rng.standard_normal((dy, dx)) * (strength / np.sqrt(dx))
    w = np.zeros((dx + dy + dz, dz + dx + dy))
    ex, ey = slice(dz, dz + dx), slice(dz + dx, dz + dx + dy)
    w[:dx, :dz], w[:dx, ex] = a, np.eye(dx)  # X = A Z + e_x
    w[dx : dx + dy, :dz], w[dx : dx + dy, ex], w[dx : dx + dy, ey] = b + c @ a, c, np.eye(dy)  # Y = B Z + C X + e_y
    w[dx + dy :, :dz] = np.eye(dz)  # Z
    return w


def gaussian_cmi_task(
    dx: int, dy: int, dz: int, strength: float, seed: int, mediation: float = 1.0
) -> tuple[np.ndarray, float]:
    """(covariance of (X, Y, Z), I(X; Y | Z) in nats) of the model in the module docstring.
    strength = 0 gives CMI = 0 exactly (conditional independence)."""
    w = mixing(dx, dy, dz, strength, seed, mediation)
    cov = w @ w.T
    cmi = 0.0 if strength == 0 else analytic_cmi(cov, dx, dy, dz)  # 0 exactly, not 1e-16
    return cov, cmi


def sample(
    cov: np.ndarray, dx: int, dy: int, dz: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n rows of (X, Y, Z) ~ N(0, cov), split into x (n, dx), y (n, dy), z (n, dz)."""
    _check_dims(dx, dy, dz)
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (dx + dy + dz,) * 2:
        raise ValueError(f"covariance has shape {cov.shape}, expected {(dx + dy + dz,) * 2}")
    data = rng.standard_normal((n, cov.shape[0])) @ np.linalg.cholesky(cov).T
    return data[:, :dx], data[:, dx : dx + dy], data[:, dx + dy :]
