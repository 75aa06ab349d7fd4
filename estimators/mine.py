"""MINE (Belghazi et al., 2018): the Donsker-Varadhan bound

    I >= E_p[T] - log E_{p_x p_y}[e^T]

maximised over an MLP critic T on concat(x, y). The gradient of the log term,
grad E[e^T] / E[e^T], is biased on a mini-batch; MINE replaces the batch
denominator by an exponential moving average (alpha 0.9: new = alpha * old +
(1 - alpha) * batch, as BMI). The reported value is the plain DV bound on the
held-out half, with a fixed shuffle of y for the product of marginals.
"""

from __future__ import annotations

import math

import torch

from estimators.neural.critics import CriticEstimator, batch_indices
from estimators.neural.training import Objective, gather_rows, row_mask
from estimators.registry import register


def _masked_mean(v: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, v, 0.0).sum(1) / count


def _masked_logmeanexp(v: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(torch.where(mask, v, -math.inf), 1) - count.log()


class MineObjective(Objective):
    maximise = True

    def __init__(self, critic, alpha: float) -> None:
        self.critic, self.alpha = critic, alpha

    def init(self, gens, dx, dy):
        # NaN marks "no average yet": the first batch seeds it (correction 1).
        return self.critic.init(gens, dx, dy), {"log_denom": torch.full((len(gens),), math.nan)}

    def draw(self, gen, ntr, batch, dx, dy, steps):
        return {"paired": batch_indices(gen, ntr, batch, steps), "marginal": batch_indices(gen, ntr, batch, steps)}

    def eval_draw(self, gen, nte, dx, dy):
        return {"perm": torch.randperm(nte, generator=gen)}

    def loss(self, params, state, group, draws):
        x = gather_rows(group.xtr, draws["paired"])
        t_joint = self.critic.paired(params, x, gather_rows(group.ytr, draws["paired"]))
        t_marg = self.critic.paired(params, x, gather_rows(group.ytr, draws["marginal"]))
        b = group.batch.to(t_joint.dtype)
        mask = row_mask(group.batch, t_joint.shape[1])
        log_denom_batch = _masked_logmeanexp(t_marg, mask, b)
        lb = log_denom_batch.detach()
        prev = state["log_denom"]
        log_denom = torch.where(
            torch.isnan(prev), lb, torch.logaddexp(math.log(self.alpha) + prev, math.log(1 - self.alpha) + lb)
        )
        # d/dtheta of correction * log E_batch[e^T] = grad E_batch[e^T] / (moving average).
        correction = torch.exp(lb - log_denom)
        loss = -(_masked_mean(t_joint, mask, b) - correction * log_denom_batch)
        return loss, {"log_denom": log_denom}

    def evaluate(self, params, state, group, ev):
        mask = row_mask(group.nte, group.xte.shape[1])
        n = group.nte.to(group.xte.dtype)
        t_joint = self.critic.paired(params, group.xte, group.yte)
        t_marg = self.critic.paired(params, group.xte, gather_rows(group.yte, ev["perm"]))
        return _masked_mean(t_joint, mask, n) - _masked_logmeanexp(t_marg, mask, n)


@register
class MINE(CriticEstimator):
    """MINE with the moving-average gradient correction. Parameters as
    `CriticEstimator`, plus alpha (0.9): weight of the old average."""

    name = "mine"
    extra_params = ("alpha",)

    def __init__(self, alpha: float = 0.9, **kw) -> None:
        if not 0 < float(alpha) < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        super().__init__(alpha=float(alpha), **kw)

    def _objective(self, key=None) -> Objective:
        return MineObjective(self.critic(), self.params["alpha"])
