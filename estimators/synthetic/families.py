"""The catalogue of distribution families with known MI, and the splits that group them.

A family is any object with `name`, `draw(dx, dy, rng) -> Distribution` and, optionally,
`min_dim`. The paper's families (`paper_families`) and the rank-space-new `hard_oomd` ones
(`hard_families`) are registered here; users add their own with `register_family`.

Splits: `train` (the meta-dataset's families), `imd` (test families seen in training),
`oomd` (test families never seen), `hard_oomd` (new even after a per-column rank transform);
test-only splits beyond monotone dependence: `mixture` (joint-space mixtures), `mixed` (discrete
and count variables) and `flow` (invertible maps a per-column rank transform cannot undo).

`train_beyond` holds the training families of the same kinds, which the meta-dataset draws at
`beyond_frac`. Where they share a kind with a test family, the parameter ranges or bases are
declared here; what is test-only stays unseen:

- mixtures: Gaussian components, K = 2..4 (test: K = 2..6, and Student-t components);
- categories: categorical x with Gaussian y given the category, and two categorical variables,
  at the test families' ranges (so those two `mixed` families are in-distribution draws); counts
  (`mixed-cat_poisson`, `mixed-poisson_common`) are test-only;
- flows: the zuko spline flow on dense, the interval exchange and the rotation-then-monotone map
  on sparse Gaussian bases (the test flows: other structures, and Student-t bases).

The training mixtures and categories stop their Monte Carlo at a standard error of 0.03 nats
(the test families: 0.009), 9x fewer rows; the label noise this adds (variance <= 0.001) is
small beside the model's error. The training spline flows come from a bank of 32 per dimension
(x and y blocks draw from it independently), so a stream meets about a thousand distinct flows.
"""

from __future__ import annotations

from typing import Any

from estimators.synthetic.discrete_families import DISCRETE_FAMILIES, DiscreteFamily
from estimators.synthetic.flow_families import FLOW_FAMILIES, FlowFamily
from estimators.synthetic.hard_families import HARD_OOMD
from estimators.synthetic.mixture_families import MIXTURE_FAMILIES, MixtureFamily
from estimators.synthetic.paper_families import (
    BASES,
    IMD_FAMILIES,
    OOMD_FAMILIES,
    TRAIN_FAMILIES,
    Distribution,
    Family,
    GaussianSampler,
    parse_family,
)

__all__ = [
    "FAMILIES",
    "SPLITS",
    "IMD_FAMILIES",
    "OOMD_FAMILIES",
    "TRAIN_FAMILIES",
    "BASES",
    "Distribution",
    "Family",
    "GaussianSampler",
    "dim_range",
    "get_family",
    "min_dim_of",
    "register_family",
    "split_families",
]

FAMILIES: dict[str, Any] = {n: parse_family(n) for n in (*TRAIN_FAMILIES, *IMD_FAMILIES, *OOMD_FAMILIES)}
SPLITS: dict[str, tuple[str, ...]] = {"train": TRAIN_FAMILIES, "imd": IMD_FAMILIES, "oomd": OOMD_FAMILIES}


def min_dim_of(family: Any) -> int:
    """Smallest dx, dy a family is defined for (1 when a registered family declares no `min_dim`)."""
    return int(getattr(family, "min_dim", 1))


def dim_range(family: Any, lo: int, hi: int) -> tuple[int, int]:
    """The part of a d range [lo, hi] where `family` is defined; a range wholly below its
    minimum is an error naming the family."""
    low = max(int(lo), min_dim_of(family))
    if low > int(hi):
        raise ValueError(f"family {family.name} needs d >= {low}; the d range is [{lo}, {hi}]")
    return low, int(hi)


def register_family(family: Any, split: str | None = None) -> None:
    """Add a family (any object with `name` and `draw(dx, dy, rng)`), optionally to a split."""
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    if split is not None:
        SPLITS[split] = (*SPLITS.get(split, ()), family.name)


def get_family(name: str):
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}") from None


def split_families(split: str) -> tuple[str, ...]:
    try:
        return SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(sorted(SPLITS))}") from None


for _fam in HARD_OOMD:
    register_family(_fam, split="hard_oomd")
# Test-only splits beyond monotone dependence (never in `train`).
for _fam in MIXTURE_FAMILIES:
    register_family(_fam, split="mixture")
for _fam in DISCRETE_FAMILIES:
    register_family(_fam, split="mixed")
for _fam in FLOW_FAMILIES:
    register_family(_fam, split="flow")

TRAIN_SE = 0.03  # Monte Carlo standard error at which the training families' MI stops
TRAIN_BEYOND = (
    MixtureFamily("train-mix-gauss-k2_4", student=False, k_range=(2, 4), stop_se=TRAIN_SE),
    DiscreteFamily("train-cat_gauss", "cat_gauss", stop_se=TRAIN_SE),
    DiscreteFamily("train-cat_cat", "cat_cat"),
    FlowFamily("train-flow-zuko-normal_dense", "zuko", "normal", "dense", bank=32),
    FlowFamily("train-flow-interval_perm-normal_sparse", "interval_perm", "normal", "sparse"),
    FlowFamily("train-flow-rotate_monotone-normal_sparse", "rotate_monotone", "normal", "sparse"),
)
for _fam in TRAIN_BEYOND:
    register_family(_fam, split="train_beyond")

# `calib`: families in neither training nor any test split, which MIST_QR's interval calibration
# draws beside the training families (estimators.mist.calibration): data the model never saw, so
# that the widening for novel data is fitted on novel data without touching a test split.
CALIB_FAMILIES = (
    MixtureFamily("calib-mix-gauss-k7_9", student=False, k_range=(7, 9), stop_se=TRAIN_SE),
    FlowFamily("calib-flow-zuko-normal_lvm", "zuko", "normal", "lvm"),
    FlowFamily("calib-flow-interval_perm-student_dense", "interval_perm", "student", "dense"),
    FlowFamily("calib-flow-rotate_monotone-student_dense", "rotate_monotone", "student", "dense"),
    parse_family("multi_normal-lvm-asinh"),
    parse_family("multi_student-dense-asinh"),
)
for _fam in CALIB_FAMILIES:
    register_family(_fam, split="calib")
