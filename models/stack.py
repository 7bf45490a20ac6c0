"""K seeds of one model as one module: every parameter gains a leading seed axis.

Stacked parameter p holds K contiguous blocks, one per seed, each of the plain model's
shape: `p.view(K, *shape)[s]` is seed s's tensor. Linear layers become batched matmuls
over the seed axis; an embedding table becomes one (K V, E) table whose seed s rows start
at s V, so a sparse gradient stays sparse. The loss is the sum of the seeds' mean losses,
so each seed's gradient is exactly its gradient alone, and the optimizers that act element
by element (Adagrad, SGD, Adam, RMSprop) update each seed exactly as alone. Each seed's
training noise comes from its own generator, in the order its plain model draws it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.dan import ACTIVATIONS, DAN, drop_scored
from models.noise import dropout_mask
from models.nplm import NPLM


class SeedStack(nn.Module):
    """Parameters stacked from K plain models of one architecture."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.k = len(models)
        self.noise: list[torch.Generator] | None = None  # one per seed, set while training
        self._plain: dict[str, tuple[str, torch.Size]] = {}  # attribute -> (plain key, shape)
        self._biases: set[str] = set()  # attributes never weight-decayed with decay_biases=False
        self._states = [dict(m.named_parameters()) for m in models]
        self.row_state: dict[str, torch.Tensor] = {}  # optimizer state kept by the stack itself

    def faster_alone(self, optimizer: str, device: torch.device) -> bool:
        """Whether one seed alone trains faster in this stacked form than as its plain model."""
        return False

    def _stack(self, attr: str, key: str, merge: bool = False, bias: bool = False) -> None:
        """Stack the plain models' parameter `key` as attribute `attr`; `merge` folds the
        seed axis into the first one (embedding tables)."""
        params = [state[key] for state in self._states]
        data = torch.stack([p.detach() for p in params])  # (K, *shape)
        if merge:
            data = data.flatten(0, 1)
        setattr(self, attr, nn.Parameter(data.clone(), requires_grad=params[0].requires_grad))
        self._plain[attr] = (key, params[0].shape)
        if bias:
            self._biases.add(attr)

    def _done_stacking(self) -> None:
        del self._states

    def bias_parameters(self) -> list[nn.Parameter]:
        return [getattr(self, a) for a in self._biases]

    def sparse_parameters(self) -> list[nn.Parameter]:
        return []

    def seed_state(self, s: int) -> dict[str, torch.Tensor]:
        """Seed s's parameters under the plain model's state_dict keys (views, not copies)."""
        return {key: getattr(self, attr).detach().view(self.k, *shape)[s]
                for attr, (key, shape) in self._plain.items()}

    def keep(self, rows: Sequence[int]) -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
        """Keep only the seeds at `rows` (positions in the stack); returns attribute -> (old, new)."""
        index = torch.as_tensor(list(rows), device=next(self.parameters()).device)
        moved = {}
        for attr, (_, shape) in self._plain.items():
            old = getattr(self, attr)
            new = nn.Parameter(select(old.detach(), self.k, shape, index), requires_grad=old.requires_grad)
            setattr(self, attr, new)
            moved[attr] = (old, new)
            if attr in self.row_state:
                self.row_state[attr] = select(self.row_state[attr], self.k, shape, index)
        self.k = len(rows)
        return moved

    def seed_offsets(self, vocab: int, device: torch.device) -> torch.Tensor:
        return (torch.arange(self.k, device=device) * vocab).view(self.k, 1, 1)  # (K, 1, 1)

    def drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout on (K, B, ...) with seed s's mask drawn from seed s's generator."""
        if not self.training or p == 0:
            return x
        return x * torch.stack([dropout_mask(x.shape[1:], p, g, x.device, x.dtype) for g in self.noise])


def select(t: torch.Tensor, k: int, shape: torch.Size, index: torch.Tensor) -> torch.Tensor:
    """Rows `index` of the K seed blocks of a stacked tensor, in the same layout."""
    blocks = t.reshape(k, *shape).index_select(0, index)
    return blocks.reshape(len(index) * t.shape[0] // k, *t.shape[1:])


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (K, B, in) through weight (K, out, in) and bias (K, out) -> (K, B, out)."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class StackedDAN(SeedStack):
    def __init__(self, models: Sequence[DAN]) -> None:
        super().__init__(models)
        m = models[0]
        self.pad, self.word_dropout = m.padding_idx, m.word_dropout
        self.vocab, self.sparse = m.embed.num_embeddings, m.embed.sparse
        self.rows_by_hand, self.row_optimizer = False, ""
        self.force_fixed_rows: bool | None = None  # see fixed_size_rows
        self._rows: torch.Tensor | None = None
        self._compact: torch.Tensor | None = None
        # L2 on every row at every step (`decay_every_row`): (lr, weight decay, eps) for the
        # next batch, the steps since the last catch-up, and the step each row is decayed to
        self.every_row: tuple[float, float, float] | None = None
        self._clock, self._decayed_to = 0, None
        self._stack("embed", "embed.weight", merge=True)
        linears = [(f"hidden.{i}", layer) for i, layer in enumerate(m.hidden) if isinstance(layer, nn.Linear)]
        linears.append(("classifier.1", m.classifier[1]))
        self.p = [layer.p for layer in (*m.hidden, *m.classifier) if isinstance(layer, nn.Dropout)]
        self.acts = [layer for layer in m.hidden if type(layer) in ACTIVATIONS.values()]
        self.layers = len(linears)
        for j, (name, _) in enumerate(linears):
            self._stack(f"w{j}", f"{name}.weight")
            self._stack(f"b{j}", f"{name}.bias", bias=True)
        self._done_stacking()

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [self.embed] if self.sparse and self.embed.requires_grad and not self.rows_by_hand else []

    def faster_alone(self, optimizer: str, device: torch.device) -> bool:
        """One seed trains faster stacked where its embedding rows are updated by hand: on the
        CPU 1.2-1.5 s against 1.4-1.9 s an epoch of SST on one thread (make bench), as no
        sparse gradient is coalesced; on a GPU, where coalescing waits for the device every
        batch, no step waits for it (`make gpu-check`)."""
        return device.type in ("cpu", "cuda") and self._rows_by_hand_ok(optimizer)

    def _rows_by_hand_ok(self, optimizer: str) -> bool:
        return self.sparse and self.embed.requires_grad and self.pad == 0 and optimizer in ("adagrad", "sgd")

    def update_rows_by_hand(self, optimizer: str) -> bool:
        """Update the embedding table here, row by row, instead of through a sparse gradient:
        each step gathers the rows the batch uses into a small dense table, and `row_step`
        applies sparse Adagrad's or SGD's update (with lazy L2) to those rows alone. The same
        arithmetic as torch's sparse path, without coalescing a gradient row per token."""
        if not self._rows_by_hand_ok(optimizer):
            return False
        self.rows_by_hand, self.row_optimizer = True, optimizer
        self.embed.requires_grad_(False)
        if optimizer == "adagrad":
            self.row_state["embed"] = torch.zeros_like(self.embed)
        return True

    def fixed_size_rows(self, flat: torch.Tensor) -> bool:
        """Whether a batch's rows are found by `distinct_rows` (fixed sizes: a GPU never waits)
        rather than torch.unique (the CPU, bit for bit as before). `force_fixed_rows` (None:
        by device) lets the CPU tests check the GPU's way."""
        force = getattr(self, "force_fixed_rows", None)
        return flat.is_cuda if force is None else force

    @torch.no_grad()
    def row_step(self, lr: float, weight_decay: float, eps: float = 1e-10) -> None:
        """The embedding rows of the last training batch: g += wd * w (lazy L2), then Adagrad
        (s += g^2; w -= lr g / (sqrt(s) + eps)) or SGD (w -= lr g)."""
        g = self._compact.grad
        if g is None:
            return
        rows = self._rows
        if weight_decay:
            g = g + weight_decay * self._compact
        if self.row_optimizer == "adagrad":
            total = self.row_state["embed"]
            s = total.index_select(0, rows).addcmul_(g, g)
            total.index_copy_(0, rows, s)
            self.embed.index_copy_(0, rows, self._compact.addcdiv_(g, s.sqrt_().add_(eps), value=-lr))
        else:
            self.embed.index_copy_(0, rows, self._compact.add_(g, alpha=-lr))
        self._compact = None
        if self.every_row is not None:
            self._clock += 1
            self._decayed_to.index_fill_(0, rows, self._clock)

    @torch.no_grad()
    def _catch_up(self, rows: torch.Tensor | None, lr: float, weight_decay: float, eps: float) -> None:
        """Decay `rows` (None: every row) for the steps they sat out since they were last
        brought up to date, as a dense L2 would have at each of them: w *= f^n, f = 1 - lr wd
        for SGD (exact at a constant lr) and 1 - lr wd / (sqrt(s) + eps) for Adagrad, where the
        n steps add about n (wd w)^2 to s and f takes s halfway through them (close where
        that sum is small beside s or eps, as with the Iyyer recipe's wd 6.67e-6 and eps 1e-3)."""
        if self._decayed_to is None:
            self._decayed_to = torch.zeros(self.embed.shape[0], dtype=torch.long, device=self.embed.device)
        behind = self._clock - (self._decayed_to if rows is None else self._decayed_to.index_select(0, rows))
        # rows already up to date (behind 0) are left as they are: f^0 = 1 and s + 0 = s,
        # bit for bit, so no check (which would wait for the device) is needed
        w = self.embed if rows is None else self.embed.index_select(0, rows)
        n = behind.unsqueeze(1).to(w.dtype)
        if self.row_optimizer == "adagrad":
            total = self.row_state["embed"]
            s = total if rows is None else total.index_select(0, rows)
            grown = n * (weight_decay * w) ** 2  # what the n steps add to s, with w as it is now
            factor = 1 - lr * weight_decay / ((s + grown / 2).sqrt() + eps)  # s halfway through them
            s = s + grown
            if rows is None:
                total.copy_(s)
            else:
                total.index_copy_(0, rows, s)
        else:
            factor = torch.full_like(w, 1 - lr * weight_decay)
        w = w * factor.pow(n)
        if rows is None:
            self.embed.copy_(w)
            self._decayed_to.fill_(self._clock)
        else:
            self.embed.index_copy_(0, rows, w)
            self._decayed_to.index_fill_(0, rows, self._clock)

    def decay_every_row(self, lr: float, weight_decay: float, eps: float) -> None:
        """From the next batch on, L2 reaches every embedding row at every step, as in a
        dense update (the released DAN code's), not only the rows a batch uses: a row is
        decayed for the steps it sat out when a batch next uses it, and all rows by
        `settle_rows` (before evaluation). The next batch's lr, weight decay and eps."""
        self.every_row = (lr, weight_decay, eps)

    def settle_rows(self) -> None:
        """Bring every row up to date (see `decay_every_row`) and restart the step count."""
        if self.every_row is not None:
            self._catch_up(None, *self.every_row)
            self._clock, self._decayed_to = 0, None

    def forward(self, tokens: torch.Tensor, widths: Sequence[int] | None = None) -> torch.Tensor:
        """tokens (K, B, T) right-padded, seed s's own batch trimmed to widths[s] -> (K, B, C)."""
        k, b, _ = tokens.shape
        if self.training and self.word_dropout > 0:
            # seed s's scores from its own generator, of its own batch's width, as alone; the
            # padding past that width is no real token and is never dropped or kept
            widths = widths or [tokens.shape[2]] * k
            scores = torch.stack([F.pad(torch.rand((b, w), generator=g, device=tokens.device),
                                        (0, tokens.shape[2] - w), value=-1.0)
                                  for w, g in zip(widths, self.noise)])  # (K, B, T)
            tokens = drop_scored(tokens.flatten(0, 1), scores.flatten(0, 1), self.word_dropout,
                                 self.pad).view(tokens.shape)
        rows = torch.where(tokens != self.pad, tokens + self.seed_offsets(self.vocab, tokens.device),
                           self.pad)  # seed s's pads -> row `pad` of seed 0: zero, no gradient
        if self.rows_by_hand and self.training:
            # the batch's rows, pad (0, the smallest) first, as a small dense leaf table
            flat = torch.cat([rows.new_zeros(1), rows.flatten()])
            used, inverse = distinct_rows(flat) if self.fixed_size_rows(flat) else \
                torch.unique(flat, return_inverse=True)
            self._rows = used
            if self.every_row is not None:
                self._catch_up(used, *self.every_row)
            self._compact = self.embed.index_select(0, used).requires_grad_()
            x = F.embedding_bag(inverse[1:].view(k * b, -1), self._compact, mode="mean",
                                padding_idx=0).view(k, b, -1)  # (K, B, E)
        else:
            x = F.embedding_bag(rows.flatten(0, 1), self.embed, mode="mean", padding_idx=self.pad,
                                sparse=self.sparse).view(k, b, -1)  # (K, B, E)
        for j in range(self.layers):
            x = linear(self.drop(x, self.p[j]), getattr(self, f"w{j}"), getattr(self, f"b{j}"))
            if j < len(self.acts):
                x = self.acts[j](x)
        return x  # (K, B, C)


def distinct_rows(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.unique(flat, return_inverse=True) for `flat` (N,) whose smallest value is
    flat[0], in tensors of fixed size N, so the device never reports a count to the host:
    `used` (N,) holds the distinct values ascending and then repeats of flat[0] (the pad
    row: zero, with no gradient, so updating it again changes nothing); `inverse` (N,) maps
    each entry to its slot in `used`."""
    ascending, order = flat.sort()
    new = torch.ones_like(ascending, dtype=torch.bool)
    new[1:] = ascending[1:] != ascending[:-1]
    slot = new.cumsum(0) - 1  # (N,) the slot of each sorted entry
    inverse = torch.empty_like(slot).scatter_(0, order, slot)
    used = ascending[:1].repeat(len(ascending)).scatter_(0, slot, ascending)
    return used, inverse


class _AddTimesWeight(torch.autograd.Function):
    """y + x W^T for x (K, B, in) and W (K, out, in), whose gradient of W is computed in W's
    own layout, g^T x, as nn.Linear's is. Autograd through baddbmm(y, x, W^T) computes it
    as (x^T g)^T and then copies that strided transpose into W's layout, which for the PTB
    NPLM's W (3 seeds x 10,000 x 240) is slow: its step went from 45 to 40 ms on 2 cores."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.y_shape = y.shape
        return torch.baddbmm(y, x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_y, need_x, need_w = ctx.needs_input_grad
        return (g.sum_to_size(ctx.y_shape) if need_y else None,
                torch.bmm(g, weight) if need_x else None,
                torch.bmm(g.transpose(1, 2), x) if need_w else None)


class StackedNPLM(SeedStack):
    def __init__(self, models: Sequence[NPLM]) -> None:
        super().__init__(models)
        m = models[0]
        self.vocab, self.p = m.embed.num_embeddings, m.dropout
        self._stack("embed", "embed.weight", merge=True)
        self._stack("b", "b", bias=True)
        self.direct = m.direct is not None
        self.hidden = m.hidden is not None
        if self.direct:
            self._stack("W", "direct.weight")
        if self.hidden:
            self._stack("H", "hidden.weight")
            self._stack("d", "hidden.bias", bias=True)
            self._stack("U", "out.weight")
        self._done_stacking()

    @property
    def draws_noise(self) -> bool:
        return self.p > 0  # as NPLM.draws_noise

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """ctx (K, B, n-1) word indices, oldest first -> logits (K, B, V)."""
        x = F.embedding(ctx + self.seed_offsets(self.vocab, ctx.device), self.embed).flatten(2)
        x = self.drop(x, self.p)  # (K, B, (n-1) m)
        y = self.b.unsqueeze(1)  # (K, 1, V)
        if self.direct:
            y = _AddTimesWeight.apply(y, x, self.W)  # + W x
        if self.hidden:
            a = torch.tanh(linear(x, self.H, self.d))  # (K, B, h)
            y = _AddTimesWeight.apply(y, self.drop(a, self.p), self.U)  # + U tanh(d + H x)
        return y  # (K, B, V): the direct or the hidden path always exists


def stack_models(models: Sequence[nn.Module]) -> SeedStack | None:
    """The stacked form of `models` (one architecture, K seeds), or None where there is none."""
    if all(type(m) is DAN for m in models):
        return StackedDAN(models)
    if all(type(m) is NPLM and not m.modern for m in models):
        return StackedNPLM(models)
    return None


def stackable(model: nn.Module) -> bool:
    return type(model) is DAN or (type(model) is NPLM and not model.modern)
