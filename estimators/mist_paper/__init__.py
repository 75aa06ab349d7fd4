"""MIST as the paper describes it: raw rows as tokens, attention over each row's features, then over rows.

The comparison point for our MIST (`estimators.mist`), which reads rank-transformed canonical
variates and side statistics instead. Same training loop (`estimators.mist.training` with
`architecture: paper`), same data; only the inputs and the network differ.

- `features`: z-scored raw rows, padded to the batch's largest dx + dy;
- `model`: feature tokens -> masked attention over a row's features -> pooling per block -> ISAB
  over rows -> PMA -> head;
- `adapter`: the registered estimators `mist_paper` and `mist_paper_qr` (no shipped weights).
"""
