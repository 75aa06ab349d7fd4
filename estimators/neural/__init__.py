"""Shared machinery for the per-dataset-trained neural estimators (MINE, InfoNCE, MINDE).

Each dataset gets its own network, but many datasets train together as one
*stacked* network: every weight carries a leading dataset axis and layers run
as `torch.bmm`. Rows and feature columns are zero-padded to the group's largest
dataset and masked, so a padded dataset trains exactly as it would alone.

- `critics`: stacked layers and the MLP critic T(x, y) on concat(x, y);
- `training`: preparation (standardise, 50/50 split), the batched Adam, and the
  batched training loop with per-dataset early stopping and failure isolation.
"""
