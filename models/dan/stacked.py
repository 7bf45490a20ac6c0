"""DAN's stacked form: K seeds of one DAN as one module (models/seed_stack.py explains the
seed axis), with the sparse embedding's rows updated by hand on a GPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.dan.model import ACTIVATIONS, DAN, drop_scored
from models.seed_stack import SeedStack, linear


class StackedDAN(SeedStack):
    """K DANs as one module. Long because the sparse embedding's rows are updated by hand
    on a GPU (`row_step`, `_catch_up`, `decay_every_row`, `settle_rows`): Adagrad's and
    SGD's per-row clocks are this object's state, which a helper would have to reach into."""

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
