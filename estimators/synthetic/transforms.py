"""Elementwise, strictly increasing transforms of BMI's benchmark, in numpy.

BMI applies these through `jax.vmap`, which re-traces for every new task; the
maps themselves are elementwise, so numpy applies them exactly and fast.
`tests/test_families.py` checks them against BMI's own functions.
"""

from __future__ import annotations

import numpy as np


def half_cube(a: np.ndarray) -> np.ndarray:
    return a * np.sqrt(np.abs(a))


def wiggly_x(a: np.ndarray) -> np.ndarray:
    return a + 0.4 * np.sin(1.0 * a) + 0.2 * np.sin(1.7 * a + 1) + 0.03 * np.sin(3.3 * a - 2.5)


def wiggly_y(a: np.ndarray) -> np.ndarray:
    return a - 0.4 * np.sin(0.4 * a) + 0.17 * np.sin(1.3 * a + 3.5) + 0.02 * np.sin(4.3 * a - 2.5)


# name -> (transform of x, transform of y); "base" is the identity.
TRANSFORMS = {
    "base": (None, None),
    "halfcube": (half_cube, half_cube),
    "asinh": (np.arcsinh, np.arcsinh),
    "wigglify": (wiggly_x, wiggly_y),
}
