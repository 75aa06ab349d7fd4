"""Synthetic data with known MI: distribution families, the MIST meta-dataset, the n-bins of every report.

The library trains its learned estimators from here; the benchmark layer builds its test corpora from
the same families. Nothing here imports the benchmark or the workflow.
"""
