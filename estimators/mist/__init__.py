"""MIST and MIST_QR: mutual information by a set transformer trained on synthetic datasets.

- `features`: per-dataset inputs (copula normal scores, shrunk CCA tokens, Gaussian-copula side input);
- `model`: the set transformer (ISAB blocks, PMA pooling, MLP head);
- `training`: `train(params, out_weights, log_csv)`;
- `adapter`: the registered estimators `mist` and `mist_qr`.

Importing this package does not import torch-heavy submodules beyond what is used.
"""
