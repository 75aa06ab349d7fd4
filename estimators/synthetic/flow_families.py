"""`flow`: invertible maps of x alone and of y alone that a per-column rank transform cannot undo (test only).

Every transform of the paper's families is elementwise and increasing, so ranks map them back onto
their Gaussian or Student-t base. The maps here are bijections of the x block and of the y block,
so MI is exactly the base's (BMI's analytic value, from `paper_families`), but they are not
increasing column by column:

- `flow-zuko-normal_sparse`, `flow-zuko-student_dense`: a random neural spline flow (zuko's NSF:
  3 masked autoregressive rational-quadratic spline transforms on [-5, 5], 8 bins, hidden layers
  (64, 64), orders alternating) per block, on the base standardised by its marginal scales. Its
  weights are drawn from the dataset's rng (hidden layers He-normal, output layer and its biases
  N(0, gain^2 / fan_in) and N(0, 0.5^2) with gain ~ U(0.5, 1.5)), the flow evaluated in float64.
- `flow-interval_perm-normal_dense`, `flow-interval_perm-student_sparse`: on every coordinate, an
  interval exchange: [-h s, h s] (s the coordinate's marginal scale, h ~ U(1.5, 3)) is cut into
  k ~ U{2..6} pieces of Dirichlet(2) lengths, the pieces are put back in a random non-identity
  order and each is reversed with probability 1/2; outside the interval the map is the identity.
  A bijection of the line, discontinuous and not monotone.
- `flow-rotate_monotone-normal_lvm`, `flow-rotate_monotone-student_sparse`: a Haar-random rotation
  of each block, the rotated coordinates standardised, then a random strictly increasing map per
  coordinate, f(z) = a z + sum_{m<3} b_m tanh(c_m (z - e_m)), a ~ U(0.1, 1), b ~ U(0.3, 2),
  c ~ U(0.5, 3), e ~ N(0, 1). Mixing before a nonlinearity: the copula is no longer the base's.

The zuko and rotation families need dx, dy >= 2 (a bijection of one coordinate that is smooth is
monotone); the interval exchange is defined from d = 1. `zuko` (and torch) are imported only when
a zuko family is drawn; drawing one leaves torch's global random state untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from estimators.synthetic.paper_families import Distribution, _normal, _student

_BASES = {"normal": _normal, "student": _student}

ZUKO_FLOW = {"transforms": 3, "hidden": (64, 64), "bins": 8}


@dataclasses.dataclass(frozen=True, eq=False)
class MappedSampler:
    """Rows of `base`, then `fx` on x and `fy` on y (kept apart so tests can compare with the base)."""

    base: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    fx: Callable[[np.ndarray], np.ndarray]
    fy: Callable[[np.ndarray], np.ndarray]

    def __call__(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.base(n, rng)
        return self.fx(x), self.fy(y)


def _scales(base, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Marginal scales (sqrt of the covariance's or dispersion's diagonal) of x and y."""
    s = np.sqrt(np.diag(base.cov))
    return s[:dx], s[dx:]


# ---------------------------------------------------------------------------
# (a) Random neural spline flows (zuko).


class ZukoMap:
    """x -> NSF(x / scale), zuko's flow with weights drawn from a numpy rng, in float64."""

    def rescaled(self, scale: np.ndarray) -> ZukoMap:
        """The same flow on a block with other marginal scales (a banked flow reused)."""
        out = object.__new__(ZukoMap)
        out.scale, out.flow, out.transform = np.asarray(scale, dtype=float), self.flow, self.transform
        return out

    def __init__(self, scale: np.ndarray, rng: np.random.Generator, gain: float) -> None:
        import torch
        import zuko

        d = len(scale)
        with torch.random.fork_rng(devices=[]):  # zuko initialises with torch's global generator
            flow = zuko.flows.NSF(
                d, transforms=ZUKO_FLOW["transforms"], hidden_features=ZUKO_FLOW["hidden"], bins=ZUKO_FLOW["bins"]
            )
        flow = flow.double()
        with torch.no_grad():
            for t in flow.transform.transforms:
                linears = [m for m in t.hyper.modules() if isinstance(m, torch.nn.Linear)]
                for i, lin in enumerate(linears):
                    fan_in = lin.weight.shape[1]
                    last = i == len(linears) - 1
                    std = gain / np.sqrt(fan_in) if last else np.sqrt(2.0 / fan_in)
                    lin.weight.copy_(torch.from_numpy(rng.normal(0.0, std, size=tuple(lin.weight.shape))))
                    bias = rng.normal(0.0, 0.5 if last else 0.1, size=tuple(lin.bias.shape))
                    lin.bias.copy_(torch.from_numpy(bias))
        self.scale = np.asarray(scale, dtype=float)
        self.flow = flow
        self.transform = flow.transform()  # data -> latent: one parallel pass per autoregressive layer

    def __call__(self, a: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.transform(torch.from_numpy(np.ascontiguousarray(a / self.scale, dtype=np.float64)))
        return out.numpy().astype(np.float64, copy=True)

    def inverse(self, b: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.transform.inv(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64)))
        return out.numpy() * self.scale


# ---------------------------------------------------------------------------
# (b) Interval exchanges of single coordinates.


@dataclasses.dataclass(frozen=True, eq=False)
class IntervalExchange:
    """Per column j: [edges[j][0], edges[j][-1]) cut at edges[j]; piece i moves to start new_start[j][i],
    reversed where flip[j][i]. Identity outside the interval."""

    edges: list[np.ndarray]
    new_start: list[np.ndarray]
    flip: list[np.ndarray]

    def __call__(self, a: np.ndarray) -> np.ndarray:
        out = np.array(a, dtype=float, copy=True)
        for j, (e, ns, fl) in enumerate(zip(self.edges, self.new_start, self.flip)):
            col = a[:, j]
            inside = (col >= e[0]) & (col < e[-1])
            v = col[inside]
            i = np.clip(np.searchsorted(e, v, side="right") - 1, 0, len(e) - 2)
            t = v - e[i]
            length = e[i + 1] - e[i]
            out[inside, j] = ns[i] + np.where(fl[i], length - t, t)
        return out


def random_interval_exchange(scale: np.ndarray, half_width: float, rng: np.random.Generator):
    edges, new_start, flips, ks = [], [], [], []
    for s in scale:
        k = int(rng.integers(2, 7))
        lo, hi = -half_width * s, half_width * s
        lengths = rng.dirichlet(np.full(k, 2.0)) * (hi - lo)
        e = lo + np.concatenate([[0.0], np.cumsum(lengths)])
        e[-1] = hi
        order = rng.permutation(k)
        while np.array_equal(order, np.arange(k)):
            order = rng.permutation(k)
        # order[p] = the piece placed p-th; pieces keep their lengths.
        starts = lo + np.concatenate([[0.0], np.cumsum(lengths[order])[:-1]])
        ns = np.empty(k)
        ns[order] = starts
        edges.append(e)
        new_start.append(ns)
        flips.append(rng.random(k) < 0.5)
        ks.append(k)
    return IntervalExchange(edges, new_start, flips), ks


# ---------------------------------------------------------------------------
# (c) A rotation, then an increasing map per coordinate.


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@dataclasses.dataclass(frozen=True, eq=False)
class RotateMonotone:
    rotation: np.ndarray  # (d, d)
    scale: np.ndarray  # (d,) of the rotated coordinates
    a: np.ndarray  # (d,)
    b: np.ndarray  # (d, 3)
    c: np.ndarray  # (d, 3)
    e: np.ndarray  # (d, 3)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        z = (v @ self.rotation.T) / self.scale
        return self.a * z + np.sum(self.b * np.tanh(self.c * (z[:, :, None] - self.e)), axis=2)


def random_rotate_monotone(cov_block: np.ndarray, rng: np.random.Generator) -> RotateMonotone:
    d = cov_block.shape[0]
    q = _random_rotation(d, rng)
    scale = np.sqrt(np.diag(q @ cov_block @ q.T))
    return RotateMonotone(
        q,
        scale,
        rng.uniform(0.1, 1.0, size=d),
        rng.uniform(0.3, 2.0, size=(d, 3)),
        rng.uniform(0.5, 3.0, size=(d, 3)),
        rng.normal(0.0, 1.0, size=(d, 3)),
    )


# ---------------------------------------------------------------------------
# The families.


@dataclasses.dataclass(frozen=True)
class FlowFamily:
    name: str
    kind: str  # zuko | interval_perm | rotate_monotone
    base: str  # normal | student
    structure: str
    bank: int = 0  # > 0: zuko flows come from a bank of this many per dimension, reused (training only)

    @property
    def min_dim(self) -> int:
        return 1 if self.kind == "interval_perm" and self.structure != "2pair" else 2

    def draw(self, dx: int, dy: int, rng: np.random.Generator) -> Distribution:
        if min(dx, dy) < self.min_dim:
            raise ValueError(f"family {self.name} needs dx, dy >= {self.min_dim}, got {dx}, {dy}")
        mi, params, base = _BASES[self.base](self.structure, dx, dy, rng)
        params = dict(params)
        if self.kind == "zuko":
            import zuko

            sx, sy = _scales(base, dx)
            if self.bank:
                (gain, fx), (_, fy) = self._banked(sx, rng), self._banked(sy, rng)
            else:
                gain = float(rng.uniform(0.5, 1.5))
                fx, fy = ZukoMap(sx, rng, gain), ZukoMap(sy, rng, gain)
            params.update(
                flow="NSF",
                gain=gain,
                zuko=zuko.__version__,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in ZUKO_FLOW.items()},
            )
        elif self.kind == "interval_perm":
            sx, sy = _scales(base, dx)
            h = float(rng.uniform(1.5, 3.0))
            (fx, kx), (fy, ky) = random_interval_exchange(sx, h, rng), random_interval_exchange(sy, h, rng)
            params.update(half_width=h, pieces_x=kx, pieces_y=ky)
        elif self.kind == "rotate_monotone":
            fx = random_rotate_monotone(base.cov[:dx, :dx], rng)
            fy = random_rotate_monotone(base.cov[dx:, dx:], rng)
        else:
            raise ValueError(f"unknown flow kind {self.kind!r}")
        return Distribution(self.name, dx, dy, mi, params, MappedSampler(base, fx, fy))

    def _banked(self, scale: np.ndarray, rng: np.random.Generator) -> tuple[float, ZukoMap]:
        """A flow for a block of len(scale) dimensions from this family's bank: a new one (from
        `rng`) until the bank holds `bank` of them, then one of those at random. Building a spline
        flow costs ~35 ms, 10-100x the rest of a draw; the bank keeps the training stream fast,
        and a stream stays deterministic (its bank fills from its own draws)."""
        entries = _ZUKO_BANK.setdefault((self.name, len(scale)), [])
        if len(entries) < self.bank:
            gain = float(rng.uniform(0.5, 1.5))
            entries.append((gain, ZukoMap(scale, rng, gain)))
            return entries[-1]
        gain, flow = entries[int(rng.integers(len(entries)))]
        return gain, flow.rescaled(scale)


_ZUKO_BANK: dict[tuple[str, int], list[tuple[float, ZukoMap]]] = {}

FLOW_FAMILIES = (
    FlowFamily("flow-zuko-normal_sparse", "zuko", "normal", "sparse"),
    FlowFamily("flow-zuko-student_dense", "zuko", "student", "dense"),
    FlowFamily("flow-interval_perm-normal_dense", "interval_perm", "normal", "dense"),
    FlowFamily("flow-interval_perm-student_sparse", "interval_perm", "student", "sparse"),
    FlowFamily("flow-rotate_monotone-normal_lvm", "rotate_monotone", "normal", "lvm"),
    FlowFamily("flow-rotate_monotone-student_sparse", "rotate_monotone", "student", "sparse"),
)
