"""The paper's distribution families (REFERENCE: BMI tasks), addressed as `base-structure-transform`.

Each family draws its parameters per dataset (ranges of REFERENCE §1), takes the
covariance / dispersion and the ground-truth MI of the BMI task with those
parameters from `gaussian_tasks` (BMI 0.1.3's definitions in numpy/scipy, equal
bit for bit; BMI itself is not needed), and samples with numpy. BMI's own
samplers are JAX functions that recompile for every new shape, which makes
varying-(n, d) corpora crawl; the distributions drawn here are the same
(checked against BMI's samplers in the tests, when BMI is installed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from estimators.synthetic import gaussian_tasks
from estimators.synthetic.transforms import TRANSFORMS

# (low, high) ranges, drawn uniformly per dataset.
RANGES = {
    "off_diag": (0.0, 0.5),
    "strength": (0.1, 5.0),
    "df": (1.0, 10.0),
    "alpha": (0.0, 1.0),
    "lambd": (0.1, 3.0),
    "beta": (0.0, 1.5),
    "eta": (0.1, 5.0),
    "epsilon": (0.1, 2.0),
}


def _u(rng: np.random.Generator, key: str) -> float:
    lo, hi = RANGES[key]
    return float(rng.uniform(lo, hi))


@dataclasses.dataclass
class Distribution:
    """One fully parametrised member of a family: sample it, read its MI."""

    family: str
    dx: int
    dy: int
    mi: float
    params: dict[str, Any]
    sampler: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.sampler(n, rng)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)


# ---------------------------------------------------------------------------
# Base distributions: return (mi, params, sampler) for given dims.


@dataclasses.dataclass(frozen=True, eq=False)  # eq on arrays is ill-defined: compare by identity
class GaussianSampler:
    """Rows of N(0, cov) (or, with df, of the multivariate t with dispersion cov), split into x | y.
    Kept as data so that likelihood-based references can read cov and df."""

    cov: np.ndarray
    dx: int
    df: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "chol", np.linalg.cholesky(self.cov))

    def __call__(self, n: int, rng: np.random.Generator):
        z = rng.standard_normal((n, self.cov.shape[0])) @ self.chol.T
        if self.df is not None:  # multivariate t: a normal scaled by sqrt(df / chi2_df)
            z = z / np.sqrt(rng.chisquare(self.df, size=(n, 1)) / self.df)
        return z[:, : self.dx], z[:, self.dx :]


def _structure_params(structure: str, dx: int, dy: int, rng: np.random.Generator) -> dict[str, Any]:
    if structure == "dense":
        return {"off_diag": _u(rng, "off_diag")}
    if structure == "sparse":
        return {"n_interacting": int(rng.integers(1, min(dx, dy) + 1)), "strength": _u(rng, "strength")}
    if structure == "2pair":
        if min(dx, dy) < 2:
            raise ValueError("the 2pair structure needs dx, dy >= 2")
        return {"strength": _u(rng, "strength")}
    if structure == "lvm":
        return {
            "n_interacting": int(rng.integers(1, min(dx, dy) + 1)),
            "alpha": _u(rng, "alpha"),
            "lambd": _u(rng, "lambd"),
            "beta": _u(rng, "beta"),
            "eta": _u(rng, "eta"),
        }
    raise ValueError(f"unknown structure {structure!r}")


def _normal(structure: str, dx: int, dy: int, rng: np.random.Generator):
    p = _structure_params(structure, dx, dy, rng)
    cov, mi = gaussian_tasks.normal_task(structure, dx, dy, **p)  # = BMI's task_multinormal_<structure>
    return mi, p, GaussianSampler(cov, dx)


def _student(structure: str, dx: int, dy: int, rng: np.random.Generator):
    if structure == "lvm":
        raise ValueError("BMI has no Student-t LVM task")
    p = _structure_params(structure, dx, dy, rng)
    p["df"] = _u(rng, "df")
    disp, mi = gaussian_tasks.student_task(structure, dx, dy, **p)  # = BMI's task_student_<structure>
    return mi, p, GaussianSampler(disp, dx, df=p["df"])


def _additive_noise(structure: str, dx: int, dy: int, rng: np.random.Generator):
    """X_j ~ U(0,1), Y_j = X_j + U(-eps_j, eps_j), independent across j.

    MI is the sum of BMI's one-dimensional formula (AdditiveUniformSampler), in
    float64: BMI evaluates it with jax in float32 (tests check the two agree).
    """
    if dx != dy:
        raise ValueError(f"the additive-noise family needs dx == dy, got {dx} and {dy}")
    eps = np.array([_u(rng, "epsilon") for _ in range(dx)])
    mi = float(sum(e - np.log(2 * e) if e <= 0.5 else 1 / (4 * e) for e in eps))

    def sample(n: int, g: np.random.Generator):
        x = g.uniform(0.0, 1.0, size=(n, dx))
        return x, x + g.uniform(-eps, eps, size=(n, dx))

    return mi, {"epsilon": eps.tolist()}, sample


BASES = {"multi_normal": _normal, "multi_student": _student, "multi_additive_noise": _additive_noise}


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    base: str
    structure: str | None
    transform: str

    @property
    def min_dim(self) -> int:
        """Smallest dx and dy the family is defined for (two interacting pairs need two columns)."""
        return 2 if self.structure == "2pair" else 1

    def draw(self, dx: int, dy: int, rng: np.random.Generator) -> Distribution:
        """Draw parameters for dims (dx, dy) and return the distribution."""
        if dx < 1 or dy < 1:
            raise ValueError(f"family {self.name}: dimensions must be >= 1, got dx={dx}, dy={dy}")
        mi, params, base_sampler = BASES[self.base](self.structure, dx, dy, rng)
        tx, ty = TRANSFORMS[self.transform]
        if tx is None:
            sampler = base_sampler
        else:

            def sampler(n, g, _s=base_sampler, _tx=tx, _ty=ty):
                x, y = _s(n, g)
                return _tx(x), _ty(y)

        return Distribution(self.name, dx, dy, mi, params, sampler)


@dataclasses.dataclass(frozen=True)
class KindFamily:
    """A family whose `kind` names the method `_<kind>(dx, dy, rng)` that draws it; subclasses
    hold the methods (the hard and the discrete families)."""

    name: str
    kind: str
    min_dim: int = 1

    def draw(self, dx: int, dy: int, rng: np.random.Generator) -> Distribution:
        if min(dx, dy) < self.min_dim:
            raise ValueError(f"family {self.name} needs dx, dy >= {self.min_dim}, got {dx}, {dy}")
        return getattr(self, f"_{self.kind}")(dx, dy, rng)


def parse_family(name: str) -> Family:
    parts = name.split("-")
    if len(parts) == 3:
        base, structure, transform = parts
    elif len(parts) == 2:
        (base, transform), structure = parts, None
    else:
        raise ValueError(name)
    return Family(name, base, structure, transform)


TRAIN_FAMILIES = (
    "multi_normal-dense-base",
    "multi_normal-dense-halfcube",
    "multi_normal-dense-asinh",
    "multi_normal-sparse-wigglify",
    "multi_normal-sparse-base",
    "multi_normal-lvm-wigglify",
    "multi_normal-lvm-base",
    "multi_normal-2pair-base",
    "multi_student-dense-base",
    "multi_student-dense-wigglify",
    "multi_student-sparse-halfcube",
    "multi_student-sparse-base",
    "multi_student-sparse-asinh",
    "multi_student-2pair-asinh",
    "multi_student-2pair-halfcube",
    "multi_additive_noise-wigglify",
)
IMD_FAMILIES = (
    "multi_normal-dense-base",
    "multi_normal-lvm-wigglify",
    "multi_normal-dense-halfcube",
    "multi_student-dense-base",
    "multi_student-sparse-base",
    "multi_student-sparse-asinh",
)
OOMD_FAMILIES = (
    "multi_normal-dense-wigglify",
    "multi_normal-sparse-halfcube",
    "multi_normal-sparse-asinh",
    "multi_student-sparse-wigglify",
    "multi_student-dense-halfcube",
    "multi_additive_noise-base",
    "multi_additive_noise-halfcube",
)

# Sanity: the paper's IMD families are training families, the OoMD ones are not.
assert set(IMD_FAMILIES) <= set(TRAIN_FAMILIES)
assert not set(OOMD_FAMILIES) & set(TRAIN_FAMILIES)
