"""The optimizer of a `TrainSettings`: parameter groups, L2 on sparse embedding rows
(lazy), torch's fused SGD where it is bit for bit the same, its fused Adagrad on the CPU,
and the learning-rate schedule."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models.errors import UserError
from models.training.settings import TrainSettings


def _sparse_weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules()
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse and m.weight.requires_grad]


def _lazy_l2(weight: nn.Parameter, decay: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gradient hook adding decay * w to the rows a sparse gradient touches: the L2 term
    of the rows seen in the batch ("lazy" L2), since PyTorch's sparse optimizer paths
    refuse weight_decay. Rows not in a batch are not decayed that step."""
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.coalesce()
        rows = grad.indices()[0]
        values = grad.values() + decay * weight.detach()[rows]
        return torch.sparse_coo_tensor(grad.indices(), values, grad.shape, is_coalesced=True,
                                       check_invariants=False)
    return hook


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer of `s` over `model`; sparse embedding weights get their L2 through `_lazy_l2`."""
    sparse = _sparse_weights(model)
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not q for q in sparse)]
    return build_optimizer(dense, [p for p in dense if p.ndim <= 1], sparse, s)


def build_optimizer(dense: list[nn.Parameter], biases: list[nn.Parameter], sparse: list[nn.Parameter],
                    s: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer of `s`: `dense` parameters (of which `biases` skip weight decay when
    `s.decay_biases` is false) and `sparse` ones, whose L2 comes through `_lazy_l2`."""
    if sparse and not s.sparse_ok:
        raise ValueError(f"{s.optimizer} (momentum {s.momentum}) cannot take sparse gradients")
    if sparse and s.l2_every_row and s.weight_decay > 0:
        raise UserError("train.l2_every_row=true needs a model with a stacked form (DAN) and "
                        "train.vectorize_seeds=auto or true: trained one seed after another, a sparse "
                        "gradient reaches only the rows a batch uses.")
    if s.decay_biases:
        groups = [{"params": dense, "weight_decay": s.weight_decay}]
    else:
        groups = [{"params": [p for p in dense if all(p is not b for b in biases)],
                   "weight_decay": s.weight_decay},
                  {"params": [p for p in dense if any(p is b for b in biases)], "weight_decay": 0.0}]
    if sparse:
        # Opting out explicitly is PyTorch's default; it silences a warning per sparse step.
        torch.sparse.check_sparse_tensor_invariants.disable()
        groups.append({"params": sparse, "weight_decay": 0.0})
        if s.weight_decay > 0:
            for w in sparse:
                w.register_hook(_lazy_l2(w, s.weight_decay))
                w.lazy_l2 = s.weight_decay  # pickled with the weight (hooks are not): see load_trainers
    if s.optimizer == "adagrad":
        fused = {"fused": True} if fused_adagrad(dense, sparse) else {}  # the keyword: torch 2.4 on
        return torch.optim.Adagrad(groups, lr=s.lr, eps=s.adagrad_eps, **fused)
    if s.optimizer == "sgd":
        return fuse(torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum), sparse)
    if s.optimizer == "adam":
        return torch.optim.Adam(groups, lr=s.lr)
    return torch.optim.RMSprop(groups, lr=s.lr, momentum=s.momentum)


def fuse(optimizer: torch.optim.Optimizer, sparse: list[nn.Parameter]) -> torch.optim.Optimizer:
    """`optimizer` (SGD without momentum) on torch's fused kernel where no parameter gets
    sparse gradients (`sparse`) and all are float tensors on one CPU or CUDA device: one
    pass a parameter instead of a temporary for the weight decay and a second for the
    update. The same arithmetic, bit for bit (tests/models/test_training.py; with momentum
    it is not, so momentum stays unfused). The PTB NPLM's step, 3 seeds at V=10k, is 1.09x
    faster for it (`make bench`, nplm_ptb). Also applied to optimizers from checkpoints
    written before, which go on identically."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if (isinstance(optimizer, torch.optim.SGD) and params and not sparse  # momentum: not bit for bit
            and all(g["momentum"] == 0 for g in optimizer.param_groups)
            and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
            and len({p.device for p in params}) == 1):
        for g in optimizer.param_groups:
            g["fused"], g["foreach"] = True, False
    return optimizer


def fused_adagrad(dense: list[nn.Parameter], sparse: list[nn.Parameter]) -> bool:
    """Whether Adagrad runs on torch's fused kernel: where no parameter gets sparse gradients
    (a stacked DAN's embedding rows are updated by hand, so its optimizer holds none) and all
    are float tensors on the CPU. One pass a parameter instead of five (the weight decay's
    temporary, the sum, its root, the eps, the update): the step of 3 stacked 300x300 layers
    takes about a third of the time, a 3-seed epoch of the default DAN space 5-17% less
    (README, "DAN's step on the CPU"). Not bit for bit the unfused loop (the last bit of some
    weights), but as reproducible; a checkpoint written unfused goes on unfused (its param
    groups say so, and an optimizer rebuilt when seeds leave a stack keeps its kind:
    `same_kernel`). On a GPU torch's default (foreach) stays, a CPU checkpoint moved there
    included (`cpu_only_fused`): the fused CUDA kernel was never measured here."""
    return not sparse and bool(dense) and all(p.device.type == "cpu" and p.dtype.is_floating_point
                                              for p in dense)


def same_kernel(new: torch.optim.Optimizer, old: torch.optim.Optimizer | None) -> torch.optim.Optimizer:
    """`new` (an optimizer rebuilt over fewer seeds) on the kernel `old` ran on, fused or not:
    a run resumed from a checkpoint written before fused Adagrad goes on unfused to its end."""
    if old is not None and type(old) is type(new):
        kind = old.param_groups[0].get("fused")
        for g in new.param_groups:
            g["fused"] = kind
    return new


def cpu_only_fused(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """An Adagrad fused on the CPU whose parameters now live elsewhere (a checkpoint moved to
    a GPU: models/relocate.py) goes on with torch's default there, as `fused_adagrad` chooses."""
    if isinstance(optimizer, torch.optim.Adagrad):
        for g in optimizer.param_groups:
            if g.get("fused") and any(p.device.type != "cpu" for p in g["params"]):
                g["fused"] = None
    return optimizer


def decayed_lr(s: TrainSettings, updates: int) -> float:
    """Bengio et al.'s schedule lr_t = lr / (1 + r t) after `updates` updates."""
    return s.lr * (1.0 / (1.0 + s.lr_decay * updates))
