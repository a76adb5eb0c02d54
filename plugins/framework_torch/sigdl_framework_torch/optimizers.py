"""SGD with momentum and Adam, written out so that training need not import ``torch._dynamo``.

``torch.optim``'s optimizers wrap every ``step`` in ``torch._disable_dynamo``, which imports
``torch._dynamo`` on first use: measured here at 3.4–5.6 s on the shared 2-core machine,
longer than training LeNet-300-100 for several epochs. These two classes compute exactly
``torch.optim``'s single-tensor updates (the path it takes for CPU tensors), and the tests
check them against ``torch.optim.SGD`` and ``torch.optim.Adam`` step for step:

* :class:`MomentumSGD` — heavy-ball momentum (Polyak 1964) as PyTorch defines it
  (``buf ← μ·buf + g``, the first step ``buf ← g``; ``p ← p − lr·buf``), with L2 weight
  decay added to the gradient; no dampening, no Nesterov.
* :class:`Adam` — Kingma & Ba, "Adam: a method for stochastic optimization" (ICLR 2015),
  with bias correction and L2 weight decay added to the gradient (not AdamW).

Both expose ``lr`` as a plain attribute that the training loop sets every step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["Adam", "MomentumSGD"]


class _Optimizer:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _gradient(self, p: torch.nn.Parameter) -> torch.Tensor | None:
        if p.grad is None:
            return None
        return p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad


class MomentumSGD(_Optimizer):
    """Stochastic gradient descent with (PyTorch-style) momentum and L2 weight decay."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = float(momentum)
        self._buffers: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            grad = self._gradient(p)
            if grad is None:
                continue
            if self.momentum:
                buf = self._buffers.get(i)
                if buf is None or buf.shape != p.shape:
                    buf = self._buffers[i] = grad.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-self.lr)


class Adam(_Optimizer):
    """Adam with bias correction and L2 weight decay (betas 0.9 and 0.999, eps 1e-8)."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self._state: dict[int, tuple[torch.Tensor, torch.Tensor, list[int]]] = {}

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            grad = self._gradient(p)
            if grad is None:
                continue
            state = self._state.get(i)
            if state is None or state[0].shape != p.shape:
                state = self._state[i] = (torch.zeros_like(p), torch.zeros_like(p), [0])
            exp_avg, exp_avg_sq, count = state
            count[0] += 1
            step = float(count[0])
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            bias_correction1 = 1 - self.beta1**step
            bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-(self.lr / bias_correction1))
