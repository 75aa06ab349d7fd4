"""MI estimators behind one interface.

    >>> import estimators
    >>> estimators.available()
    >>> est = estimators.get("ksg", k=5).estimate(x, y)
    >>> est.mi  # nats

Estimators register themselves (`@register`) in this package, or from another installed
package through an entry point in the group `mist_bench.estimators` (see `estimators.registry`).
`estimators.testing.check_estimator` runs the conformance checks on any of them.
Importing this package is cheap: estimator modules load on the first `available()` or `get()`.
"""

from estimators.base import Estimate, Estimator
from estimators.registry import available, from_config, get, register

__all__ = ["Estimate", "Estimator", "available", "get", "from_config", "register"]
