"""`hard_oomd`: families that stay out of distribution after a per-column rank transform.

Every transform in the paper's families is elementwise and increasing, so a
copula (rank) transform maps those families back onto their base. The families
here keep MI analytic but change the dependence structure *in rank space*:

- `hard-spiral-normal_sparse`: BMI's spiral (a rotation of two coordinates by an
  angle growing with |x|^2) on a sparse Gaussian. It mixes coordinates, so ranks
  of single columns no longer see a Gaussian copula. MI is preserved (a
  diffeomorphism of x alone, and of y alone).
- `hard-rotate_halfcube-normal_sparse`: a random rotation of x (and of y), then
  half-cube. Mixing before a nonlinearity gives a non-Gaussian copula whose
  informative directions are spread over all coordinates.
- `hard-coupling-student_sparse`: additive coupling x_j <- x_j + a sin(b x_{j-1})
  (a triangular map with unit Jacobian, so invertible) on a sparse Student-t.
- `hard-concat-normal_additive`: x and y each concatenate an independent sparse
  Gaussian block and a uniform additive-noise block: a mixed noise model the
  training families never combine. MI is the sum of the blocks' MIs.
- `hard-student_lowdf-dense`: Student-t with df in [0.3, 1), below the training
  range [1, 10]. The t copula depends on df (tail dependence grows as df falls),
  so this is new in rank space too.

A monotone per-coordinate "bimodal" transform (BMI's 1v1-bimodal, via an
inverse CDF) is deliberately absent: it is increasing per coordinate, so it
collapses onto its base under ranks, exactly the failure mode this split avoids.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from estimators.synthetic import gaussian_tasks
from estimators.synthetic.paper_families import (
    Distribution,
    GaussianSampler,
    KindFamily,
    _additive_noise,
    _normal,
    _student,
    _u,
)
from estimators.synthetic.transforms import half_cube


def spiral(a: np.ndarray, speed: float, i: int, j: int) -> np.ndarray:
    """BMI's Spiral with the canonical so(n) generator (i, j): rotate plane (i, j) by speed * |a|^2."""
    theta = speed * np.einsum("ni,ni->n", a, a)
    c, s = np.cos(theta), np.sin(theta)
    out = a.copy()
    out[:, i] = c * a[:, i] - s * a[:, j]
    out[:, j] = s * a[:, i] + c * a[:, j]
    return out


def coupling(a: np.ndarray, amp: float, freq: float) -> np.ndarray:
    out = a.copy()
    out[:, 1:] += amp * np.sin(freq * a[:, :-1])
    return out


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@dataclasses.dataclass(frozen=True)
class HardFamily(KindFamily):
    def _spiral(self, dx, dy, rng):
        mi, params, base = _normal("sparse", dx, dy, rng)
        speed = float(rng.uniform(0.5, 2.0))
        ix, iy = (0, 1), ((1, 2) if dy >= 3 else (0, 1))  # BMI's choice of generators

        def sample(n, g):
            x, y = base(n, g)
            return spiral(x, speed / dx, *ix), spiral(y, speed / dy, *iy)

        return Distribution(self.name, dx, dy, mi, {**params, "speed": speed}, sample)

    def _rotate_halfcube(self, dx, dy, rng):
        mi, params, base = _normal("sparse", dx, dy, rng)
        qx, qy = _random_rotation(dx, rng), _random_rotation(dy, rng)

        def sample(n, g):
            x, y = base(n, g)
            return half_cube(x @ qx.T), half_cube(y @ qy.T)

        return Distribution(self.name, dx, dy, mi, params, sample)

    def _coupling(self, dx, dy, rng):
        mi, params, base = _student("sparse", dx, dy, rng)
        amp, freq = float(rng.uniform(0.5, 2.0)), float(rng.uniform(1.0, 3.0))

        def sample(n, g):
            x, y = base(n, g)
            return coupling(x, amp, freq), coupling(y, amp, freq)

        return Distribution(self.name, dx, dy, mi, {**params, "amp": amp, "freq": freq}, sample)

    def _concat(self, dx, dy, rng):
        k = max(1, min(dx, dy) // 2)  # uniform-noise coordinates on each side
        mi_g, p_g, gauss = _normal("sparse", dx - k, dy - k, rng)
        mi_u, p_u, unif = _additive_noise(None, k, k, rng)

        def sample(n, g):
            xg, yg = gauss(n, g)
            xu, yu = unif(n, g)
            return np.hstack([xg, xu]), np.hstack([yg, yu])

        return Distribution(self.name, dx, dy, mi_g + mi_u, {"gaussian": p_g, "noise": p_u, "k_noise": k}, sample)

    def _student_lowdf(self, dx, dy, rng):
        off, df = _u(rng, "off_diag"), float(rng.uniform(0.3, 1.0))
        disp, mi = gaussian_tasks.student_task("dense", dx, dy, df, off_diag=off)  # = BMI's task_student_dense
        return Distribution(self.name, dx, dy, mi, {"off_diag": off, "df": df}, GaussianSampler(disp, dx, df=df))


HARD_OOMD = (
    HardFamily("hard-spiral-normal_sparse", "spiral", min_dim=2),
    HardFamily("hard-rotate_halfcube-normal_sparse", "rotate_halfcube", min_dim=1),
    HardFamily("hard-coupling-student_sparse", "coupling", min_dim=2),
    HardFamily("hard-concat-normal_additive", "concat", min_dim=2),
    HardFamily("hard-student_lowdf-dense", "student_lowdf", min_dim=1),
)
