"""`infonet`: amortised MI through a learned DV-critic lookup table (Hu et al., ICML 2024).

Our own network and weights (the published ones cannot be downloaded); see
`estimators.infonet.model` for the architecture and `estimators.infonet.training` for how
the shipped weights were trained.

For 1-D x and 1-D y the estimate is MI (`info["quantity"] == "mi"`). Otherwise it is
*sliced* MI (`"sliced_mi"`): the mean, over `n_projections` random directions theta (in x
space) and phi (in y space), of the 1-D estimate on (theta.x, phi.y). Sliced MI is a different
quantity from MI (it is at most MI, and often far below it); do not read it as MI.
Columns are standardised before projecting, so the projection does not favour large-scale
columns.

Each 1-D pair is rank-mapped per margin onto [-1, 1] (ties get their average rank), the rows
are put in a canonical order (sorted by x, then y), the network builds the table and the DV
bound is read out with `n_permutations` fixed permutations for the marginal term, on the same
rows the table was built from (as in InfoNet). On its own that is optimistic, badly so at small
n: for independent data the shipped weights give +0.035 nats at n = 500, +0.39 at n = 100 and
+1.5 at n = 20. Hence `null_correction` (default: on when `n_splits=0`) subtracts that mean
output on independent data of the same n, a table over n stored in the checkpoint card by
training (after the rank map, independent data have one law per n, so it depends on n only).
Independent data are then centred on 0; under strong dependence, where the optimism is
smaller, the corrected estimate errs low, strongly so at n <= 100, where the network is weak.
`n_splits=k > 0` cross-fits instead, as in training: the table built from one half of the rows
is scored on the other half, both ways, for k fixed halvings; that is a DV lower bound from
n/2 rows and errs low. The result is deterministic and independent of the row order.

Batching: all 1-D problems (projections of all datasets) are grouped by n and pushed through
the network together, `max_tokens` rows per forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from estimators.base import Estimate, Estimator
from estimators.checkpoint import CheckpointError, load_checkpoint, read_card
from estimators.device import resolve_device
from estimators.infonet.model import InfoNet, estimate_dv
from estimators.registry import register
from estimators.standardise import standardise

SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "infonet.safetensors"


def load_model(weights: str | Path, device: torch.device | str = "cpu") -> tuple[InfoNet, dict[str, Any]]:
    """Build the network from the checkpoint card and load its weights (raises CheckpointError)."""
    card = read_card(weights)
    if card.get("model") != "infonet" or "architecture" not in card:
        raise CheckpointError(f"checkpoint {weights} is not an InfoNet checkpoint (model={card.get('model')!r})")
    model = InfoNet.from_arch(card["architecture"])
    card = load_checkpoint(model, weights, device=device)
    return model.to(device).eval(), card


def to_grid(a: np.ndarray) -> np.ndarray:
    """Columns of a (n, k) -> 2 rank/(n+1) - 1 with average ranks for ties."""
    return 2.0 * rankdata(a, axis=0, method="average") / (a.shape[0] + 1.0) - 1.0


@register
class InfoNetEstimator(Estimator):
    name = "infonet"
    min_n = 10  # where the null-offset table starts (measured there); the shipped weights trained on n >= 20
    allow_constant = True
    deterministic = True
    amortised = True
    uses_gpu = True

    def __init__(
        self,
        weights: str | Path | None = None,
        n_projections: int = 128,
        n_permutations: int = 8,
        n_splits: int = 0,
        null_correction: bool | None = None,
        seed: int = 0,
        device: str = "auto",
        max_tokens: int = 1 << 15,
    ) -> None:
        super().__init__(
            weights=weights,
            n_projections=n_projections,
            n_permutations=n_permutations,
            n_splits=n_splits,
            null_correction=null_correction,
            seed=seed,
            device=device,
            max_tokens=max_tokens,
        )
        if n_projections < 1 or n_permutations < 1:
            raise ValueError("n_projections and n_permutations must be >= 1")
        if n_splits < 0:
            raise ValueError(f"n_splits must be >= 0, got {n_splits}")
        self.n_splits = int(n_splits)
        self.weights = Path(weights) if weights is not None else SHIPPED_WEIGHTS
        self.n_projections = int(n_projections)
        self.n_permutations = int(n_permutations)
        self.seed = int(seed)
        self.max_tokens = int(max_tokens)
        self.device = resolve_device(device)
        self.model, self.card = load_model(self.weights, self.device)
        # default: on for the same-rows read-out, off when cross-fitting
        self.null_correction = (n_splits == 0) if null_correction is None else bool(null_correction)
        if self.null_correction and (n_splits != 0 or "null_offset" not in self.card):
            raise ValueError(
                "null_correction needs n_splits=0 and a checkpoint card with a 'null_offset' "
                f"table ({self.weights} has {'one' if 'null_offset' in self.card else 'none'})"
            )

    def _offset(self, n: int) -> float:
        """The estimator's mean output on independent data of n rows (interpolated in log n)."""
        tab = self.card["null_offset"]
        return float(np.interp(np.log(n), np.log(tab["n"]), tab["mi"]))

    # -- 1-D problems ------------------------------------------------------------
    def quantity(self, dx: int, dy: int) -> str:
        return "sliced_mi" if dx > 1 or dy > 1 else "mi"

    def _slices(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(k, n, 2) rank-mapped, canonically ordered 1-D pairs for one dataset."""
        n, dx = x.shape
        dy = y.shape[1]
        if dx == 1 and dy == 1:
            px, py = x, y
        else:
            rng = np.random.default_rng([self.seed, dx, dy])
            k = self.n_projections
            tx = rng.standard_normal((dx, k))
            ty = rng.standard_normal((dy, k))
            tx /= np.linalg.norm(tx, axis=0)
            ty /= np.linalg.norm(ty, axis=0)
            px = standardise(x) @ tx if dx > 1 else np.repeat(x, k, 1)
            py = standardise(y) @ ty if dy > 1 else np.repeat(y, k, 1)
        gx, gy = to_grid(px), to_grid(py)  # (n, k)
        out = np.empty((gx.shape[1], n, 2), dtype=np.float32)
        for j in range(gx.shape[1]):
            order = np.lexsort((gy[:, j], gx[:, j]))
            out[j, :, 0] = gx[order, j]
            out[j, :, 1] = gy[order, j]
        return out

    @torch.inference_mode()
    def _run(self, slices: np.ndarray) -> np.ndarray:
        """DV estimates for (k, n, 2) 1-D problems of one n, in chunks of max_tokens rows."""
        k, n, _ = slices.shape
        chunk = max(1, self.max_tokens // n)
        out = []
        for s in range(0, k, chunk):
            xy = torch.from_numpy(slices[s : s + chunk]).to(self.device)
            out.append(estimate_dv(self.model, xy, self.n_permutations, self.n_splits, self.seed).cpu().numpy())
        res = np.concatenate(out).astype(np.float64)
        return res - self._offset(n) if self.null_correction else res

    # -- interface ------------------------------------------------------------------
    def _estimate(self, x: np.ndarray, y: np.ndarray) -> Estimate:
        return self._estimate_batch([(x, y)])[0]

    def _estimate_batch(self, datasets: list[tuple[np.ndarray, np.ndarray]]) -> list[Estimate]:
        per_ds = [self._slices(x, y) for x, y in datasets]
        by_n: dict[int, list[int]] = defaultdict(list)
        for i, s in enumerate(per_ds):
            by_n[s.shape[1]].append(i)
        values: list[np.ndarray | None] = [None] * len(datasets)
        for idx in by_n.values():
            res = self._run(np.concatenate([per_ds[i] for i in idx]))
            pos = 0
            for i in idx:
                k = per_ds[i].shape[0]
                values[i] = res[pos : pos + k]
                pos += k
        out = []
        for (x, y), v in zip(datasets, values):
            kind = self.quantity(x.shape[1], y.shape[1])
            sliced = kind == "sliced_mi"
            info: dict[str, Any] = {
                "quantity": kind,
                "n_permutations": self.n_permutations,
                "n_splits": self.n_splits,
                "null_offset": self._offset(x.shape[0]) if self.null_correction else 0.0,
                "weights": str(self.weights),
                "weights_sha256": self.card.get("sha256"),
            }
            if sliced:
                info["n_projections"] = self.n_projections
                info["projection_sd"] = float(v.std())
            out.append(Estimate(mi=float(v.mean()), info=info))
        return out
