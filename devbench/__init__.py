"""Benchmarks of the suite itself: speed ratios, validation draws, oracles, bad-input tables, the
reference-run copier and the docs' generated results page. Developer tools: not installed with the
package, and nothing in `estimators/` or `benchmarks/` imports them. Run from a checkout:

    python -m devbench.ksg_bench
"""
