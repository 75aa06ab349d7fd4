"""Stacked (batched) layers: one independent network per dataset, run as one.

Weights have shape (G, fan_in, fan_out) for G datasets and inputs (G, rows,
fan_in), so a layer is one `baddbmm`. Each dataset's weights are drawn from its
own generator at its true fan-in and then zero-padded; zero input columns and
zero weight rows get zero gradient, so padding never changes what a dataset
learns (Adam is elementwise, and a zero gradient leaves a zero weight at zero).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def stacked_linear(
    gens: Sequence[torch.Generator],
    fan_in: Sequence[int],
    fan_out: Sequence[int],
    in_max: int | None = None,
    out_max: int | None = None,
    zero: bool = False,
    init_fan_in: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (G, in_max, out_max) and biases (G, 1, out_max), padded with zeros.

    Initialised as torch.nn.Linear (uniform +-1/sqrt(fan_in)) per dataset;
    `init_fan_in` overrides the fan-in used for the scale (for a layer whose
    input is split across several weight blocks); `zero=True` gives an
    all-zero layer (MINDE's output layer).
    """
    in_max = in_max or max(fan_in)
    out_max = out_max or max(fan_out)
    g = len(gens)
    w = torch.zeros(g, in_max, out_max)
    b = torch.zeros(g, 1, out_max)
    if not zero:
        for i, gen in enumerate(gens):
            fi, fo = fan_in[i], fan_out[i]
            bound = 1.0 / math.sqrt((init_fan_in or fan_in)[i])
            w[i, :fi, :fo] = (torch.rand(fi, fo, generator=gen) * 2 - 1) * bound
            b[i, 0, :fo] = (torch.rand(fo, generator=gen) * 2 - 1) * bound
    return w, b


def linear(z: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(G, R, in) @ (G, in, out) + b (G, 1, out) -> (G, R, out)."""
    return torch.baddbmm(b, z, w)


def _relu_forward(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = pre.relu_()
    return out, out


def _tanh_forward(pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = pre.tanh_()
    return out, out


# The critics' activations, by name: the function itself, and for the fused pair MLP a
# forward in place on the pre-activation returning (output, what the backward needs)
# and that backward (relu and tanh: from their output; silu: from its input).
ACTIVATIONS = {
    "relu": (torch.relu, _relu_forward, lambda g, out: torch.ops.aten.threshold_backward(g, out, 0)),
    "tanh": (torch.tanh, _tanh_forward, torch.ops.aten.tanh_backward),
    "silu": (torch.nn.functional.silu, lambda pre: (torch.nn.functional.silu(pre), pre), torch.ops.aten.silu_backward),
}


class _PairMLP(torch.autograd.Function):
    """T(x_i, y_j) over all R x C pairs from the first layer's halves, hx (G, H, R) and
    hy (G, H, C), through the rest of the MLP, with activations kept features-major:
    (G, width, R * C). Every product then has the long pair axis last, where CPU BLAS
    is fast, and the whole backward is written out, so that no transposed copies or
    autograd bookkeeping touch the R * C-row tensors. At InfoNCE's defaults (8
    datasets, B = 64, widths 16 and 8, one thread) a training step's critic forward
    and backward take 2.6-4.3 ms this way against 6.1-7.2 ms through autograd on
    row-major (G, R * C, width) activations; batched InfoNCE training as a whole takes
    1.5x less CPU time (64 datasets, n = 500: 8.2-8.7 s against 12.8-13.1 s)."""

    @staticmethod
    def forward(ctx, act: str, hx, hy, *weights):
        g, h, r = hx.shape
        c = hy.shape[2]
        act_forward = ACTIVATIONS[act][1]
        z, saved = act_forward((hx[:, :, :, None] + hy[:, :, None, :]).view(g, h, r * c))
        inputs, acts = [z], [saved]
        layers = len(weights) // 2
        for k in range(layers):
            w, b = weights[2 * k], weights[2 * k + 1]  # (G, in, out), (G, 1, out)
            pre = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), z)  # (G, out, R * C)
            if k < layers - 1:
                z, saved = act_forward(pre)
                inputs.append(z)
                acts.append(saved)
            else:
                z = pre
        ctx.act, ctx.shape = act, (g, h, r, c)
        ctx.save_for_backward(*inputs, *acts, *weights)
        return z.view(g, r, c)  # the last width is 1

    @staticmethod
    def backward(ctx, grad):
        g, h, r, c = ctx.shape
        saved = ctx.saved_tensors
        layers = len(saved) // 4
        inputs, acts, weights = saved[:layers], saved[layers : 2 * layers], saved[2 * layers :]
        act_backward = ACTIVATIONS[ctx.act][2]
        dz = grad.reshape(g, 1, r * c)
        grads = []
        for k in reversed(range(layers)):
            w = weights[2 * k]
            grads = [torch.bmm(inputs[k], dz.transpose(1, 2)), dz.sum(2)[:, None, :]] + grads
            dz = act_backward(torch.bmm(w, dz), acts[k])  # (G, in, R * C)
        dz = dz.view(g, h, r, c)
        return (None, dz.sum(3), dz.sum(2), *grads)


_AFFINE_MIN = 1 << 16


class _Affine(torch.autograd.Function):
    """beta + z * gamma, gamma and beta (G, 1, H) per dataset. Autograd's addcmul
    backward also scales z by the (unit) value, one more pass over the (G, R, H)
    activations: this backward takes 15-25% less time at MINDE's (64, 128, 64). Below
    `_AFFINE_MIN` elements (one dataset trained alone) the Python function's overhead
    costs more than the pass (one-at-a-time MINDE-C was 3.5% slower), so autograd's
    addcmul runs there: the same values and gradients, bit for bit."""

    @staticmethod
    def forward(ctx, z, gamma, beta):
        ctx.save_for_backward(z, gamma)
        return torch.addcmul(beta, z, gamma)

    @staticmethod
    def backward(ctx, grad):
        z, gamma = ctx.saved_tensors
        return grad * gamma, (grad * z).sum(1, keepdim=True), grad.sum(1, keepdim=True)


def group_norm(
    h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, groups: int, eps: float = 1e-5
) -> torch.Tensor:
    """GroupNorm over the feature axis of (G, R, H), per row; gamma/beta (G, 1, H).

    Each group of H / groups features is a row of torch's fused layer_norm (the
    same statistics: biased variance, eps inside the root). Forward and backward
    take 1.3-1.9x less time on a CPU than group_norm's on (G * R, H), whose kernel is
    built for large spatial extents; a hand-written mean/var was slower than either.
    The affine part is per dataset."""
    g, r, width = h.shape
    size = width // groups
    normed = torch.nn.functional.layer_norm(h.reshape(-1, size), (size,), eps=eps)
    normed = normed.view(g, r, width)
    return _Affine.apply(normed, gamma, beta) if normed.numel() >= _AFFINE_MIN else torch.addcmul(beta, normed, gamma)


class PairCritic:
    """MLP critic T(x, y) on concat(x, y), stacked over datasets (MINE, InfoNCE).

    The first layer is split into an x block and a y block, W1 [x; y] = Wx x + Wy y,
    so all B x B pairs cost two (B, H) products plus a broadcast add instead of
    B^2 concatenations. Parameters are a flat list of tensors for the optimiser.
    """

    def __init__(self, hidden: Sequence[int], activation: str = "relu") -> None:
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive widths, got {hidden!r}")
        self.hidden = [int(h) for h in hidden]
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.act, self.activation = ACTIVATIONS[activation][0], activation

    def init(self, gens: Sequence[torch.Generator], dx: Sequence[int], dy: Sequence[int]) -> list[torch.Tensor]:
        h1 = self.hidden[0]
        g = len(gens)
        din = [a + b for a, b in zip(dx, dy)]
        wx, b1 = stacked_linear(gens, dx, [h1] * g, init_fan_in=din)
        wy, _ = stacked_linear(gens, dy, [h1] * g, init_fan_in=din)
        params = [wx, wy, b1]
        widths = self.hidden + [1]
        for a, b in zip(widths[:-1], widths[1:]):
            params += stacked_linear(gens, [a] * g, [b] * g)
        return params

    def _tail(self, params: list[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        rest = params[3:]
        for k in range(0, len(rest), 2):
            h = linear(self.act(h), rest[k], rest[k + 1])
        return h.squeeze(-1)

    def paired(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """T(x_i, y_i): (G, R, dx), (G, R, dy) -> (G, R)."""
        wx, wy, b1 = params[:3]
        return self._tail(params, torch.baddbmm(b1, x, wx) + torch.bmm(y, wy))

    def all_pairs(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """T(x_i, y_j) for all i, j: (G, R, dx), (G, C, dy) -> (G, R, C)."""
        wx, wy, b1 = params[:3]
        hx = torch.baddbmm(b1.transpose(1, 2), wx.transpose(1, 2), x.transpose(1, 2))  # (G, H, R)
        hy = torch.bmm(wy.transpose(1, 2), y.transpose(1, 2))
        return _PairMLP.apply(self.activation, hx, hy, *params[3:])


# -- estimators built on a critic (MINE, InfoNCE) ------------------------------
from estimators.neural.training import NeuralEstimator, common_params  # noqa: E402


class CriticEstimator(NeuralEstimator):
    """Shared parameters of the critic-based bounds. Budgets are parameters:

    hidden: critic widths on concat(x, y); activation: relu | silu | tanh;
    steps: most training steps; batch: rows per step (capped at the training
    half); lr: Adam learning rate; eval_every / patience: held-out evaluation
    period and evaluations without gain before stopping; train_fraction: the
    training share of the rows (0.5 as BMI); standardize: per column, first;
    seed: of everything random; group_size: most datasets trained as one
    stacked network; batched: False trains one at a time (reference path);
    device: "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N".
    """

    # Per-method defaults for `hidden` and `batch` (InfoNCE pays B^2 pairs per step).
    default_hidden: tuple[int, ...] = (32, 16)
    default_batch: int = 128
    # Keyword parameters a subclass adds (MINE's alpha); any other name is a typo and an error.
    extra_params: tuple[str, ...] = ()

    def __init__(
        self,
        hidden=None,
        activation: str = "relu",
        steps: int = 2000,
        batch: int | None = None,
        lr: float = 3e-3,
        eval_every: int = 100,
        patience: int = 3,
        train_fraction: float = 0.5,
        standardize: bool = True,
        seed: int = 0,
        group_size: int = 64,
        batched: bool = True,
        device: str = "auto",
        **extra,
    ) -> None:
        unknown = sorted(set(extra) - set(self.extra_params))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected parameters {unknown}")
        hidden = self.default_hidden if hidden is None else hidden
        batch = self.default_batch if batch is None else batch
        PairCritic(hidden, activation)  # validates
        super().__init__(
            **common_params(
                hidden=tuple(int(h) for h in hidden),
                activation=activation,
                steps=int(steps),
                batch=int(batch),
                lr=float(lr),
                eval_every=int(eval_every),
                patience=int(patience),
                train_fraction=float(train_fraction),
                standardize=bool(standardize),
                seed=int(seed),
                group_size=int(group_size),
                batched=bool(batched),
                device=device,
                **extra,
            )
        )

    def critic(self) -> PairCritic:
        return PairCritic(self.params["hidden"], self.params["activation"])


def batch_indices(gen: torch.Generator, n: int, b: int, steps: int) -> torch.Tensor:
    """(steps, b) row indices, each row drawn without replacement from range(n)."""
    return torch.rand(steps, n, generator=gen).argsort(dim=1)[:, :b]
