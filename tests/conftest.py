from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]


def snakemake_cmd(config, results, work, *extra, targets=()):
    """A Snakemake command on the repository's Snakefile, run in its own working directory `work`
    (Snakemake's locks and metadata stay out of the checkout), writing to `results`."""
    return [
        "snakemake",
        *map(str, targets),
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(work),
        *extra,
        "--configfile",
        str(config),
        "--config",
        f"results={results}",
    ]
