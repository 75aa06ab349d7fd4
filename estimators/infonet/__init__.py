"""InfoNet (Hu et al., ICML 2024), reimplemented and trained here.

- `model`: the attention network (sample set -> G x G DV-critic table) and the DV read-out;
- `data`: the vectorised Gaussian-mixture training stream (and Monte-Carlo MI of mixtures);
- `training`: `train(params, out_weights, log_csv)`, the training entry point;
- `adapter`: the `infonet` estimator behind the common interface (imported here so that
  importing this package registers it).
"""

from estimators.infonet.adapter import InfoNetEstimator

__all__ = ["InfoNetEstimator"]
