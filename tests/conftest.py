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


# Test-only architecture of the random-init weights below: small, so the shared suites stay fast.
TINY_PAPER_MODEL = {
    "feat_width": 8,
    "feat_heads": 2,
    "width": 16,
    "heads": 2,
    "inducing": 4,
    "n_isab": 1,
    "head_hidden": 16,
}


def write_paper_test_weights(path, quantile: bool) -> Path:
    """A random-init paper-style MIST checkpoint with a card the adapter accepts, labelled as test weights."""
    import torch

    from estimators.checkpoint import save_checkpoint
    from estimators.mist.training import KINDS, build_model, merge_params

    torch.manual_seed(0)
    model, feats = build_model(merge_params({"architecture": "paper", "quantile": quantile, "model": TINY_PAPER_MODEL}))
    card = {
        "kind": KINDS["paper"][int(quantile)],
        "architecture": model.arch.to_dict(),
        "features": feats.to_dict(),
        "training": {"note": "random-init test weights (tests/conftest.py): interface checks only"},
    }
    save_checkpoint(model, path, card)
    return Path(path)


@pytest.fixture(scope="session", autouse=True)
def weights_for_unshipped_estimators(tmp_path_factory):
    """Registered estimators without shipped weights (`requires_weights`: mist_paper, mist_paper_qr) run
    the shared suites (conformance, bad input, runner) on random-init test weights given as their
    `test_params`: those suites check the interface, not accuracy. tests/test_mist_paper.py trains
    real ones."""
    import estimators
    from estimators.registry import estimator_class

    classes = [estimator_class(n) for n in estimators.available()]
    patched = {}
    for cls in classes:
        if getattr(cls, "requires_weights", False) and "weights" not in cls.test_params:
            path = tmp_path_factory.mktemp("test_weights") / f"{cls.kind}.safetensors"
            write_paper_test_weights(path, quantile=cls.kind.endswith("_qr"))
            patched[cls] = cls.test_params
            cls.test_params = {**cls.test_params, "weights": str(path)}
    yield
    for cls, params in patched.items():
        cls.test_params = params
