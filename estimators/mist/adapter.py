"""The `mist` and `mist_qr` estimators (amortised: one forward pass for many datasets).

    >>> import estimators
    >>> estimators.get("mist").estimate(x, y).mi
    >>> e = estimators.get("mist_qr").estimate(x, y); e.lower, e.upper, e.quantiles

Categorical columns (`estimate(x, y, discrete=...)`, see `estimators.discrete`): weights trained
with `discrete_recode` recode them by a label-free order before the features, and each estimate's
`info` lists them (`categorical_x`, `categorical_y`); weights trained without it read every column
as numbers and refuse an explicit categorical spec.

Weights default to the files shipped in `estimators/weights/`. Loading checks
the card (kind, architecture) and the SHA-256 of the weights and loads strictly:
a missing, truncated or mismatched checkpoint is an error, never random weights.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from estimators.base import Estimate, Estimator
from estimators.checkpoint import CheckpointError, load_checkpoint, read_card
from estimators.device import resolve_device
from estimators.discrete import categorical_columns
from estimators.mist.features import FeatureConfig, dataset_features, swap_view
from estimators.mist.model import TAU_GRID, Architecture, MISTNet
from estimators.registry import register

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def load_model(weights: str | Path, kind: str, device: torch.device) -> tuple[MISTNet, FeatureConfig, dict]:
    card = read_card(weights)  # missing file / card / hash mismatch -> CheckpointError
    if card.get("kind") != kind:
        raise CheckpointError(
            f"checkpoint {weights} is a {card.get('kind')!r} checkpoint, the {kind!r} estimator needs a {kind!r} one"
        )
    try:
        arch = Architecture.from_dict(card["architecture"])
        fcfg = FeatureConfig.from_dict(card["features"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint card of {weights} has no valid architecture/features: {err}") from None
    if arch.quantile != (kind == "mist_qr"):
        raise CheckpointError(f"checkpoint {weights}: architecture quantile={arch.quantile} does not fit {kind!r}")
    # The weights' shapes are checked on load; these card fields are not in the weights, and a
    # card that disagrees with itself would otherwise fail late or predict from the wrong inputs.
    for field, want in (
        ("token_dim", fcfg.token_dim),
        ("context_dim", fcfg.context_dim),
        ("residual", fcfg.side_input),
    ):
        if getattr(arch, field) != want:
            raise CheckpointError(
                f"checkpoint card of {weights}: architecture {field}={getattr(arch, field)!r} "
                f"does not match its features ({want!r})"
            )
    model = MISTNet(arch)
    load_checkpoint(model, weights, device=str(device))
    model.to(device).eval()
    return model, fcfg, card


Columns = tuple[list[int], list[int]]  # (categorical columns of x, of y)


def quantile_levels(taus: Sequence[float], interval: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, float]]:
    """The sorted quantile grid (with the interval's ends and the median) and the interval, checked."""
    taus = tuple(sorted({float(t) for t in (*taus, *interval, 0.5)}))
    if not all(0.0 < t < 1.0 for t in taus):
        raise ValueError(f"quantile levels must lie in (0, 1), got {taus}")
    lo, hi = (float(v) for v in interval)
    if not lo < 0.5 < hi:
        raise ValueError(f"interval must bracket the median, got {interval}")
    return taus, (lo, hi)


def card_spread_scale(card: dict, calibrated: bool, interval: tuple[float, float], weights: Path) -> float:
    """The conformal spread scale of a quantile checkpoint's card (`estimators.mist.calibration`); 1 = raw
    quantiles. It was fitted for one interval: at another level it would mis-state the coverage."""
    cal = card.get("calibration") if calibrated else None
    if cal and tuple(cal["interval"]) != tuple(interval):
        raise ValueError(
            f"the conformal scale of {weights.name} was fitted for the interval "
            f"{tuple(cal['interval'])}; pass calibrated=False for raw quantiles at {tuple(interval)}"
        )
    return float(cal["spread_scale"]) if cal else 1.0


def quantile_estimates(
    raw: np.ndarray, taus: tuple[float, ...], interval: tuple[float, float], scale: float, clip: bool, infos: list
) -> list[Estimate]:
    """Estimates from raw quantile predictions (N, T): sorted (no crossing), widened around the median by
    `scale` (s > 0 keeps the order), floored at 0 with `clip`; the median is the point estimate. `infos`:
    each estimate's info after its interval level."""
    lo, hi = interval
    q = np.sort(raw, axis=1)
    med = q[:, [taus.index(0.5)]]
    q = med + scale * (q - med)
    if clip:
        q = np.maximum(q, 0.0)
    out = []
    for row, info in zip(q, infos):
        qmap = {t: float(v) for t, v in zip(taus, row)}
        out.append(
            Estimate(
                mi=qmap[0.5],
                lower=qmap[lo],
                upper=qmap[hi],
                quantiles=qmap,
                info={"interval_level": round(hi - lo, 10), **info},
            )
        )
    return out


# Fewer datasets than this are not worth starting worker processes for.
_MIN_POOL_DATASETS = 64
_JOB_DATASETS = 32  # datasets per worker job: small enough to share a chunk among the workers


def _features_of(items: Sequence[tuple[tuple[np.ndarray, np.ndarray], Columns]], cfg: FeatureConfig) -> list:
    return [dataset_features(x, y, cfg, discrete=c) for (x, y), c in items]


@contextlib.contextmanager
def _feature_pool(workers: int, n_datasets: int) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes for the features of a large batch (None: computed in this process).

    The features are numpy and per dataset, about three quarters of MIST's inference time on a
    CPU; the network stays in this process. Workers are forked where the platform can (they then
    start in milliseconds and touch no torch state), else spawned."""
    w = (os.cpu_count() or 1) if workers == 0 else workers
    if w <= 1 or n_datasets < _MIN_POOL_DATASETS:
        yield None
        return
    methods = mp.get_all_start_methods()
    with ProcessPoolExecutor(
        max_workers=w, mp_context=mp.get_context("fork" if "fork" in methods else "spawn")
    ) as pool:
        yield pool


@contextlib.contextmanager
def _network_threads(pool: ProcessPoolExecutor | None, device: torch.device) -> Iterator[None]:
    """One torch thread for the network while worker processes hold the cores: measured, a 999-dataset
    batch at n = 500 then takes 2.5 s, against 3.6 s with torch's default threads competing."""
    if pool is None or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _submit_features(pool: ProcessPoolExecutor | None, items: list, cfg: FeatureConfig) -> Callable[[], list]:
    """A callable that returns the features of `items`: computed on call without a pool, else
    already submitted to it in jobs of _JOB_DATASETS datasets (results in order)."""
    if pool is None:
        return lambda: _features_of(items, cfg)
    futures = [
        pool.submit(_features_of, items[s : s + _JOB_DATASETS], cfg) for s in range(0, len(items), _JOB_DATASETS)
    ]
    return lambda: [f for fut in futures for f in fut.result()]


class _MISTBase(Estimator):
    amortised = True
    uses_gpu = True
    handles_discrete = True
    min_n = 4
    kind = "mist"

    def __init__(
        self,
        weights: str | None = None,
        swap_average: bool = True,
        batch_size: int = 256,
        device: str = "auto",
        workers: int = 1,
        **extra,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0 (0: one per CPU), got {workers!r}")
        super().__init__(
            weights=weights, swap_average=swap_average, batch_size=batch_size, device=device, workers=workers, **extra
        )
        self.device = resolve_device(device)
        path = Path(weights) if weights else WEIGHTS_DIR / f"{self.kind}.safetensors"
        self.model, self.features, self.card = load_model(path, self.kind, self.device)
        self.weights_path = path
        # Fewer rows than the weights were trained on is out of their range: refuse rather than guess.
        trained_n = self.card.get("training", {}).get("data_spec", {}).get("n")
        if trained_n:
            self.min_n = max(type(self).min_n, int(trained_n[0]))

    def module(self, temperature: float | None = None, clip: bool | None = None, discrete=None):
        """This estimator as a differentiable, frozen torch module (`estimators.mist.module`):
        forward(x, y) on tensors gives MI in nats (MIST_QR: the median and its quantiles).

        `temperature`: of the soft ranks (default: the validated one; 0 gives hard ranks and no
        gradient through them); `clip`: floor at 0 (default: this estimator's `clip`, but a loss
        usually wants False: the floor has no gradient); `discrete`: as in `estimate()`."""
        from estimators.mist.module import DEFAULT_TEMPERATURE, MISTModule

        return MISTModule(
            self.model,
            self.features,
            temperature=DEFAULT_TEMPERATURE if temperature is None else temperature,
            swap_average=self.params["swap_average"],
            clip=self.params["clip"] if clip is None else clip,
            discrete="auto" if discrete is None else discrete,
            min_n=self.min_n,
            **self._module_quantiles(),
        ).to(self.device)

    def _module_quantiles(self) -> dict:
        return {}

    def _estimate(self, x: np.ndarray, y: np.ndarray, discrete: Columns | None = None) -> Estimate:
        return self._estimate_batch([(x, y)], discrete=None if discrete is None else [discrete])[0]

    def _categorical_refusal(self) -> str | None:
        if self.features.discrete_recode:
            return None
        return (
            f"{self.name}: the weights {self.weights_path} were trained without categorical recoding "
            "(their features have no discrete_recode), so they read every column as numbers and cannot "
            "treat columns as categorical; leave discrete='auto' or use weights trained with discrete_recode"
        )

    def _columns(
        self, datasets: Sequence[tuple[np.ndarray, np.ndarray]], discrete: Sequence[Columns] | None
    ) -> list[Columns]:
        """Each dataset's (x_cols, y_cols): those given, else the default rule's. Weights without
        `discrete_recode` read no columns as categorical: none by default, and naming one is an error."""
        if discrete is None:
            if not self.features.discrete_recode:
                return [([], [])] * len(datasets)
            return [categorical_columns(x, y, "auto") for x, y in datasets]
        if len(discrete) != len(datasets):
            raise ValueError(f"discrete: {len(discrete)} column pairs for {len(datasets)} datasets")
        cols = [(list(xc), list(yc)) for xc, yc in discrete]
        if any(xc or yc for xc, yc in cols) and (reason := self._categorical_refusal()):
            raise ValueError(reason)
        return cols

    def _info(self, cols: Columns) -> dict:
        """The categorical columns in an estimate's info (weights with discrete_recode only)."""
        if not self.features.discrete_recode:
            return {}
        return {"categorical_x": list(cols[0]), "categorical_y": list(cols[1])}

    @torch.no_grad()
    def _predict(
        self,
        datasets: Sequence[tuple[np.ndarray, np.ndarray]],
        taus: tuple[float, ...] | None,
        discrete: Sequence[Columns] | None = None,
    ) -> np.ndarray:
        """Raw predictions (N,) or (N, T), averaged over the (x, y) swap when enabled.

        Datasets are grouped by n; each group goes through one forward pass (the
        swapped view is built from the same features and rides in the same pass).
        `discrete`: each dataset's categorical columns (x_cols, y_cols); None: the default rule.
        They change the features only with weights trained with `discrete_recode`.
        """
        cols = self._columns(datasets, discrete)
        swap = bool(self.params["swap_average"])
        out = np.zeros((len(datasets), len(taus))) if taus else np.zeros(len(datasets))
        ns = np.array([x.shape[0] for x, _ in datasets])
        bs = int(self.params["batch_size"])
        chunks = [
            idx[s : s + bs] for n in np.unique(ns) for idx in [np.flatnonzero(ns == n)] for s in range(0, len(idx), bs)
        ]
        with _feature_pool(self.params["workers"], len(datasets)) as pool, _network_threads(pool, self.device):
            # Every chunk's features are submitted first: the workers compute later chunks while
            # this process runs the network on earlier ones.
            pending = [
                _submit_features(pool, [(datasets[i], cols[i]) for i in chunk], self.features) for chunk in chunks
            ]
            for chunk, job in zip(chunks, pending):
                feats = job()
                tok = np.stack([f[0] for f in feats])
                ctx = np.stack([f[1] for f in feats])
                g = np.array([f[2] for f in feats], dtype=np.float32)
                if swap:
                    tok_s, ctx_s = swap_view(tok, ctx, self.features)
                    tok, ctx, g = np.concatenate([tok, tok_s]), np.concatenate([ctx, ctx_s]), np.concatenate([g, g])
                tau = None
                if taus:
                    tau = torch.tensor(taus, dtype=torch.float32, device=self.device).expand(len(g), -1)
                pred = (
                    self.model(
                        torch.from_numpy(tok).to(self.device),
                        torch.from_numpy(ctx).to(self.device),
                        torch.from_numpy(g).to(self.device),
                        tau,
                    )
                    .double()
                    .cpu()
                    .numpy()
                )
                if swap:
                    pred = 0.5 * (pred[: len(chunk)] + pred[len(chunk) :])
                out[chunk] = pred
        return out


@register
class MIST(_MISTBase):
    """MIST: point estimate from an MSE-trained set transformer.

    Parameters: weights (path; default: shipped), swap_average (average over
    exchanging x and y), batch_size (datasets per forward pass), device, clip (MI is never
    negative: False keeps the network's raw output, as a permutation test's statistic needs),
    workers (processes that compute a large batch's features beside the network; 0: one per
    CPU; the network then runs on one torch thread, so estimates move by float32 rounding, ~1e-7).
    """

    name = "mist"
    kind = "mist"

    def __init__(
        self,
        weights: str | None = None,
        swap_average: bool = True,
        batch_size: int = 256,
        device: str = "auto",
        clip: bool = True,
        workers: int = 1,
    ) -> None:  # explicit: a misspelt parameter is an error
        super().__init__(
            weights=weights,
            swap_average=swap_average,
            batch_size=batch_size,
            device=device,
            clip=clip,
            workers=workers,
        )

    def _estimate_batch(self, datasets, discrete=None):
        cols = self._columns(datasets, discrete)
        pred = self._predict(datasets, None, cols)
        return [
            Estimate(
                mi=float(max(v, 0.0) if self.params["clip"] else v),
                info={"weights": str(self.weights_path), **self._info(c)},
            )
            for v, c in zip(pred, cols)
        ]


@register
class MIST_QR(_MISTBase):
    """MIST_QR: quantiles of MI from a pinball-trained set transformer.

    `taus` is the quantile grid (must contain `interval` ends and 0.5); the
    point estimate is the median; quantiles are sorted, so they never cross.
    `calibrated` applies the conformal spread scale stored in the card (see
    `estimators.mist.calibration`), widening every quantile around the median.
    The scale holds for the interval it was fitted for (the card's, 5%-95% for the
    shipped weights); another `interval` needs `calibrated=False` (raw quantiles).
    `clip` (default True) floors every quantile at 0; False keeps them as predicted. `workers`:
    as MIST's.
    """

    name = "mist_qr"
    kind = "mist_qr"

    def __init__(
        self,
        weights: str | None = None,
        swap_average: bool = True,
        batch_size: int = 256,
        device: str = "auto",
        taus: Sequence[float] = TAU_GRID,
        interval: Sequence[float] = (0.05, 0.95),
        calibrated: bool = True,
        clip: bool = True,
        workers: int = 1,
    ) -> None:
        taus, (lo, hi) = quantile_levels(taus, interval)
        super().__init__(
            weights=weights,
            swap_average=swap_average,
            batch_size=batch_size,
            device=device,
            taus=taus,
            interval=(lo, hi),
            calibrated=calibrated,
            clip=clip,
            workers=workers,
        )
        self.spread_scale = card_spread_scale(self.card, calibrated, (lo, hi), self.weights_path)

    def _module_quantiles(self) -> dict:
        return {"taus": self.params["taus"], "spread_scale": self.spread_scale}

    def _estimate_batch(self, datasets, discrete=None):
        taus = self.params["taus"]
        cols = self._columns(datasets, discrete)
        raw = self._predict(datasets, taus, cols)
        infos = [{"weights": str(self.weights_path), "spread_scale": self.spread_scale, **self._info(c)} for c in cols]
        return quantile_estimates(raw, taus, self.params["interval"], self.spread_scale, self.params["clip"], infos)
