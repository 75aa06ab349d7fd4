"""MI estimators behind one interface.

    >>> import estimators
    >>> estimators.available()
    >>> est = estimators.get("ksg", k=5).estimate(x, y)
    >>> est.mi  # nats
"""
from estimators.base import Estimate, Estimator
from estimators.registry import available, from_config, get, register

__all__ = ["Estimate", "Estimator", "available", "get", "from_config", "register"]
