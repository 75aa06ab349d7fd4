import numpy as np
import pytest


@pytest.fixture
def gaussian_pair():
    """Bivariate Gaussian with rho = 0.75 (MI = 0.4133 nats), as a function of (n, seed)."""

    def make(n: int = 500, seed: int = 0, rho: float = 0.75):
        rng = np.random.default_rng(seed)
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
        return z[:, :1], z[:, 1:]

    return make
