"""Seaborn figures of the evaluation; each writes a PNG (for the report) and a PDF (vector, for
papers) atomically, both without timestamps so that a rerun writes the same bytes."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from estimators.atomic import atomic_path  # noqa: E402

FORMATS = {"png": {"Software": None}, "pdf": {"CreationDate": None}}  # format -> metadata to drop


def _save(fig, stem: str | os.PathLike) -> None:
    """Write `stem`.png and `stem`.pdf."""
    for fmt, metadata in FORMATS.items():
        with atomic_path(Path(stem).with_suffix(f".{fmt}")) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def mse_vs_n(df: pd.DataFrame, stem: str | os.PathLike, unit: str = "nats") -> None:
    """MSE against n, one line per estimator, one panel per (corpus, split); log y."""
    ok = df[df["ok"]].assign(se=lambda d: d["err"] ** 2)
    agg = ok.groupby(["corpus", "split", "estimator", "n"], as_index=False)["se"].mean()
    agg["panel"] = agg["corpus"] + " / " + agg["split"]
    g = sns.relplot(
        data=agg,
        x="n",
        y="se",
        hue="estimator",
        col="panel",
        col_wrap=min(4, agg["panel"].nunique()),
        kind="line",
        marker="o",
        height=3,
        aspect=1.2,
        facet_kws={"sharey": False},
    )
    g.set(yscale="log", ylabel=f"MSE ({unit}²)")
    g.set_titles("{col_name}")
    _save(g.figure, stem)


def estimate_vs_truth(df: pd.DataFrame, stem: str | os.PathLike, unit: str = "nats") -> None:
    ok = df[df["ok"]].copy()
    ok["panel"] = ok["corpus"] + " / " + ok["split"]
    g = sns.relplot(
        data=ok,
        x="true_mi",
        y="mi",
        hue="estimator",
        col="panel",
        col_wrap=min(4, ok["panel"].nunique()),
        s=8,
        alpha=0.5,
        height=3,
        aspect=1.1,
        facet_kws={"sharex": False, "sharey": False},
    )
    for ax in g.axes.flat:
        lo, hi = ax.get_xlim()
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    g.set_titles("{col_name}")
    g.set(xlabel=f"true MI ({unit})", ylabel=f"estimate ({unit})")
    _save(g.figure, stem)


def time_vs_n(df: pd.DataFrame, stem: str | os.PathLike) -> None:
    agg = df[df["ok"]].groupby(["estimator", "n"], as_index=False)["seconds"].median()  # as the timing table
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=agg, x="n", y="seconds", hue="estimator", marker="o", ax=ax)
    ax.set(yscale="log", ylabel="median seconds per dataset")
    _save(fig, stem)


def calibration_curves(cal: pd.DataFrame, stem: str | os.PathLike) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    if len(cal):
        # one curve per corpus and split: pooling corpora would average different datasets' curves
        cal = cal.assign(curve=cal["estimator"] + " / " + cal["corpus"] + ":" + cal["split"])
        sns.lineplot(data=cal, x="nominal", y="empirical", hue="curve", marker="o", ax=ax)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="nominal", ylabel="empirical", xlim=(0, 1), ylim=(0, 1))
    _save(fig, stem)


def family_errors(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean relative error per family (rows) and estimator (columns) over every corpus and
    split the family appears in: each group's mean weighted by the datasets it is over, its
    estimated ones (failures have no error to average)."""
    w = summary[summary["mean_rel_error"].notna()]
    w = w.assign(estimated=w["datasets"] - w["failed"])
    w = w.assign(weighted=w["mean_rel_error"] * w["estimated"])
    sums = w.groupby(["family", "estimator"])[["weighted", "estimated"]].sum()
    return (sums["weighted"] / sums["estimated"]).unstack("estimator")


def family_heatmap(summary: pd.DataFrame, stem: str | os.PathLike) -> None:
    piv = family_errors(summary)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * max(1, piv.shape[1]), 0.5 + 0.35 * max(1, piv.shape[0])))
    sns.heatmap(
        piv.clip(upper=2.0),
        annot=piv.round(2),
        fmt="",
        cmap="rocket_r",
        ax=ax,
        cbar_kws={"label": "mean relative error (clipped at 2)"},
    )
    _save(fig, stem)


def power_curves(power: pd.DataFrame, stem: str | os.PathLike) -> None:
    """Rejection rate against strength, one line per test, one panel per alternative; the
    dotted line is the level (strength 0 shows the size)."""
    g = sns.relplot(
        data=power,
        x="strength",
        y="power",
        hue="method",
        style="method",
        col="family",
        col_wrap=min(5, power["family"].nunique()),
        kind="line",
        markers=True,
        dashes=False,
        height=2.6,
        facet_kws={"sharey": True},
    )
    for ax in g.axes.flat:
        ax.axhline(0.05, ls=":", c="grey", lw=1)
        ax.set_ylim(-0.02, 1.02)
    g.set_axis_labels("strength", "rejection rate")
    _save(g.figure, stem)
