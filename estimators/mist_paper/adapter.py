"""The `mist_paper` and `mist_paper_qr` estimators: the paper's MIST design, trained by the DAG.

    >>> estimators.get("mist_paper", weights="results/models/mist_paper.safetensors").estimate(x, y).mi

No weights are shipped: `weights` is required, and the workflow passes the file its rule
`train_mist_paper` (`train_mist_paper_qr`) writes. Loading checks the card strictly (kind,
architecture design, features, SHA-256) and the tensors' names and shapes: a MIST checkpoint, a
missing file or a mismatched card is an error, never random weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from estimators.base import Estimate, Estimator
from estimators.checkpoint import CheckpointError, load_checkpoint, read_card
from estimators.device import resolve_device
from estimators.mist.adapter import card_spread_scale, quantile_estimates, quantile_levels
from estimators.mist.model import TAU_GRID
from estimators.mist_paper.features import PaperFeatures, batch_features
from estimators.mist_paper.model import PaperArchitecture, PaperNet
from estimators.registry import register


def load_model(weights: str | Path, kind: str, device: torch.device) -> tuple[PaperNet, PaperFeatures, dict]:
    card = read_card(weights)  # missing file / card / hash mismatch -> CheckpointError
    if card.get("kind") != kind:
        raise CheckpointError(
            f"checkpoint {weights} is a {card.get('kind')!r} checkpoint; the {kind!r} estimator needs a "
            f"{kind!r} one (trained with `architecture: paper`)"
        )
    try:
        arch = PaperArchitecture.from_dict(card["architecture"])
        feats = PaperFeatures.from_dict(card["features"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint card of {weights} has no valid paper-style architecture/features: {err}"
        ) from None
    if arch.quantile != kind.endswith("_qr"):
        raise CheckpointError(f"checkpoint {weights}: architecture quantile={arch.quantile} does not fit {kind!r}")
    model = PaperNet(arch)
    load_checkpoint(model, weights, device=str(device))
    model.to(device).eval()
    return model, feats, card


class _PaperBase(Estimator):
    amortised = True
    uses_gpu = True
    has_batch_path = True
    min_n = 4
    requires_weights = True  # nothing shipped: the conformance suite runs these on test weights
    kind = "mist_paper"

    def __init__(
        self,
        weights: str | None = None,
        swap_average: bool = True,
        batch_size: int = 256,
        device: str = "auto",
        **extra,
    ) -> None:
        super().__init__(weights=weights, swap_average=swap_average, batch_size=batch_size, device=device, **extra)
        if weights is None:
            raise CheckpointError(
                f"{self.name} has no shipped weights: pass weights=<file>. The workflow's rule "
                f"train_{self.kind} writes them (`snakemake --cores all train_{self.kind}` -> "
                f"results/models/{self.kind}.safetensors)"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.device = resolve_device(device)
        self.weights_path = Path(weights)
        self.model, self.features, self.card = load_model(self.weights_path, self.kind, self.device)
        # Fewer rows than the weights were trained on is out of their range: refuse rather than guess.
        trained_n = self.card.get("training", {}).get("data_spec", {}).get("n")
        if trained_n:
            self.min_n = max(type(self).min_n, int(trained_n[0]))

    @torch.no_grad()
    def _predict(self, datasets: Sequence[tuple[np.ndarray, np.ndarray]], taus: tuple[float, ...] | None):
        """Raw predictions (N,) or (N, T), datasets grouped by n, averaged over the (x, y) swap when enabled
        (this design tells x from y by a learned embedding, so the two readings differ)."""
        out = np.zeros((len(datasets), len(taus))) if taus else np.zeros(len(datasets))
        ns = np.array([x.shape[0] for x, _ in datasets])
        bs = int(self.params["batch_size"])
        views = (False, True) if self.params["swap_average"] else (False,)
        for n in np.unique(ns):
            idx = np.flatnonzero(ns == n)
            for s in range(0, len(idx), bs):
                chunk = idx[s : s + bs]
                preds = []
                for swapped in views:
                    swap = np.full(len(chunk), swapped)
                    tok, ctx, _ = batch_features([datasets[i] for i in chunk], self.features, swap=swap)
                    tau = None
                    if taus:
                        tau = torch.tensor(taus, dtype=torch.float32, device=self.device).expand(len(chunk), -1)
                    tok_t, ctx_t = torch.from_numpy(tok).to(self.device), torch.from_numpy(ctx).to(self.device)
                    pred = self.model(tok_t, ctx_t, None, tau)
                    preds.append(pred.double().cpu().numpy())
                out[chunk] = np.mean(preds, axis=0)
        return out


@register
class MISTPaper(_PaperBase):
    """The paper's MIST design (raw rows, attention over features and rows), MSE-trained.

    Parameters: weights (path; required: nothing is shipped), swap_average (average over exchanging
    x and y), batch_size (datasets per forward pass), device, clip (floor at 0; False keeps the raw output).
    """

    name = "mist_paper"
    kind = "mist_paper"

    def __init__(
        self,
        weights: str | None = None,
        swap_average: bool = True,
        batch_size: int = 256,
        device: str = "auto",
        clip: bool = True,
    ) -> None:
        super().__init__(weights=weights, swap_average=swap_average, batch_size=batch_size, device=device, clip=clip)

    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        return self._estimate_batch([(x, y)])[0]

    def _estimate_batch(self, datasets):
        pred = self._predict(datasets, None)
        return [
            Estimate(mi=float(max(v, 0.0) if self.params["clip"] else v), info={"weights": str(self.weights_path)})
            for v in pred
        ]


@register
class MISTPaperQR(_PaperBase):
    """The paper's MIST design with quantiles (pinball-trained), as MIST_QR: `taus` the grid (with the
    interval's ends and 0.5), the median the point estimate, quantiles sorted (never crossing);
    `calibrated` applies the card's conformal spread scale (fitted for the card's interval)."""

    name = "mist_paper_qr"
    kind = "mist_paper_qr"

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
    ) -> None:
        taus, interval = quantile_levels(taus, interval)
        super().__init__(
            weights=weights,
            swap_average=swap_average,
            batch_size=batch_size,
            device=device,
            taus=taus,
            interval=interval,
            calibrated=calibrated,
            clip=clip,
        )
        self.spread_scale = card_spread_scale(self.card, calibrated, interval, self.weights_path)

    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        return self._estimate_batch([(x, y)])[0]

    def _estimate_batch(self, datasets):
        taus = self.params["taus"]
        raw = self._predict(datasets, taus)
        info = {"weights": str(self.weights_path), "spread_scale": self.spread_scale}
        return quantile_estimates(
            raw, taus, self.params["interval"], self.spread_scale, self.params["clip"], [info] * len(raw)
        )
