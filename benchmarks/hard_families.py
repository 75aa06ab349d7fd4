"""Families that stay out-of-distribution after a per-column rank transform (hard_oomd).

Filled in by the evaluation work; registering happens on import.
"""
