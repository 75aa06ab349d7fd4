"""Units of information. Every estimator computes in nats; bits are a view on the result.

    >>> estimators.get("ksg").estimate(x, y, unit="bits").mi
    >>> est.to("bits")            # a converted copy of an Estimate

One bit is ln 2 nats. A value in nats divided by ln 2 is the same MI in bits.
"""

from __future__ import annotations

import math

UNITS = ("nats", "bits")
NATS_PER_BIT = math.log(2.0)


def check_unit(unit: str) -> str:
    """`unit` if it is one of UNITS, else a ValueError naming the choices."""
    if not isinstance(unit, str) or unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    return unit


def per_nat(unit: str) -> float:
    """The factor that turns a value in nats into `unit` (1 for nats, 1 / ln 2 for bits)."""
    return 1.0 if check_unit(unit) == "nats" else 1.0 / NATS_PER_BIT


def convert(value: float, unit: str, source: str = "nats") -> float:
    """`value`, measured in `source`, expressed in `unit`."""
    return value * per_nat(unit) / per_nat(source)
