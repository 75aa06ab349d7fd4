"""MI estimators behind one interface, and the analyses built on them.

    >>> import estimators
    >>> estimators.available()
    >>> est = estimators.get("ksg", k=5).estimate(x, y)
    >>> est.mi  # nats; estimate(x, y, unit="bits") for bits
    >>> estimators.independence_test(x, y, estimator="mist").p_value
    >>> estimators.mi_matrix(df, estimator="mist")
    >>> estimators.rank_features(X, y, estimator="ksg")
    >>> estimators.conditional_mi(x, y, z, estimator="ksg")

Estimators register themselves (`@register`) in this package, or from another installed
package through an entry point in the group `mist_bench.estimators` (see `estimators.registry`).
`estimators.testing.check_estimator` runs the conformance checks on any of them.
Importing this package is cheap: estimator modules load on the first `available()` or `get()`,
and the analysis functions on first use.
"""

from estimators.base import Estimate, Estimator
from estimators.registry import available, from_config, get, register

# Analysis functions: name -> module, imported on first access (PEP 562).
_LAZY = {
    "independence_test": "estimators.independence",
    "IndependenceResult": "estimators.independence",
    "mi_matrix": "estimators.matrix",
    "rank_features": "estimators.matrix",
    "conditional_mi": "estimators.conditional",
}

__all__ = ["Estimate", "Estimator", "available", "get", "from_config", "register", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'estimators' has no attribute {name!r}")
