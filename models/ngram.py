"""n-gram baselines in exactly the NPLM's tokenisation: an interpolated trigram (deleted
interpolation, weights fit on valid; Jelinek & Mercer 1980) and interpolated
Kneser-Ney (Kneser & Ney 1995; Chen & Goodman 1998). Counts are sorted integer keys
looked up with searchsorted, so scoring a split is vectorised."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize


class _Counts:
    """Sorted unique int64 keys with their counts; `get(keys)` -> counts (0 when unseen)."""

    def __init__(self, keys: np.ndarray):
        self.keys, self.counts = np.unique(keys, return_counts=True)

    def get(self, keys: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self.keys, keys)
        i = np.minimum(i, len(self.keys) - 1)
        return np.where(self.keys[i] == keys, self.counts[i], 0)


class Trigram:
    """P(w | u, v) over a vocabulary of size V, fit on one training token stream."""

    def __init__(self, train: np.ndarray, vocab_size: int, kind: str = "interpolated",
                 lambdas: tuple[float, float, float, float] = (0.4, 0.35, 0.2, 0.05)):
        if kind not in ("interpolated", "kneser_ney"):
            raise ValueError(f"kind must be interpolated or kneser_ney, not {kind!r}")
        t = np.asarray(train, dtype=np.int64)
        self.V, self.kind = int(vocab_size), kind
        self.lambdas = np.asarray(lambdas, dtype=np.float64)  # trigram, bigram, unigram, uniform
        V = self.V
        tri = (t[:-2] * V + t[1:-1]) * V + t[2:]
        bi = t[:-1] * V + t[1:]
        self.c3 = _Counts(tri)  # c(uvw)
        self.c3_ctx = _Counts(tri // V)  # c(uv.)
        self.c2 = _Counts(bi)  # c(vw)
        self.c2_ctx = _Counts(bi // V)  # c(v.)
        self.c1 = np.bincount(t, minlength=V).astype(np.float64)
        self.n = float(t.size)
        if kind == "kneser_ney":
            self._fit_kn()

    # Kneser-Ney ------------------------------------------------------------------------
    @staticmethod
    def _discount(counts: np.ndarray) -> float:
        n1, n2 = (counts == 1).sum(), (counts == 2).sum()
        return float(n1 / (n1 + 2 * n2)) if n1 + n2 else 0.5

    def _fit_kn(self) -> None:
        V = self.V
        self.d3 = self._discount(self.c3.counts)
        self.n3_follow = _Counts(self.c3.keys // V)  # N1+(uv.): distinct w after uv
        # continuation counts of bigrams: N1+(.vw) = distinct u before vw
        vw = self.c3.keys % (V * V)
        self.cont2 = _Counts(vw)
        self.d2 = self._discount(self.cont2.counts)
        self.cont2_ctx = _Counts(np.repeat(self.cont2.keys // V, self.cont2.counts))  # N1+(.v.)
        self.n2_follow = _Counts(self.cont2.keys // V)  # N1+(v.) among continuation bigrams
        # unigram continuation: N1+(.w) = distinct v before w
        bigram_types = self.c2.keys
        self.cont1 = np.bincount(bigram_types % V, minlength=V).astype(np.float64)
        self.d1 = self._discount(self.cont1[self.cont1 > 0].astype(np.int64))
        total = self.cont1.sum()
        seen = (self.cont1 > 0).sum()
        self.p1_kn = (np.maximum(self.cont1 - self.d1, 0) + self.d1 * seen / V) / total

    def _kn(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        V = self.V
        p1 = self.p1_kn[w]
        c2c = self.cont2_ctx.get(v).astype(np.float64)
        safe2 = np.maximum(c2c, 1)
        p2 = np.where(c2c > 0,
                      (np.maximum(self.cont2.get(v * V + w) - self.d2, 0)
                       + self.d2 * self.n2_follow.get(v) * p1) / safe2, p1)
        ctx = u * V + v
        c3c = self.c3_ctx.get(ctx).astype(np.float64)
        safe3 = np.maximum(c3c, 1)
        return np.where(c3c > 0,
                        (np.maximum(self.c3.get(ctx * V + w) - self.d3, 0)
                         + self.d3 * self.n3_follow.get(ctx) * p2) / safe3, p2)

    # Interpolation -----------------------------------------------------------------------
    def _components(self, u, v, w) -> tuple[np.ndarray, np.ndarray]:
        """Per-order estimates (T, 4) and which orders have a seen context (T, 4)."""
        V = self.V
        c3c = self.c3_ctx.get(u * V + v).astype(np.float64)
        c2c = self.c2_ctx.get(v).astype(np.float64)
        p = np.stack([self.c3.get((u * V + v) * V + w) / np.maximum(c3c, 1),
                      self.c2.get(v * V + w) / np.maximum(c2c, 1),
                      self.c1[w] / self.n, np.full(w.shape, 1.0 / V)], axis=1)
        avail = np.stack([c3c > 0, c2c > 0, np.ones_like(c3c, bool), np.ones_like(c3c, bool)], axis=1)
        return p, avail

    def _interp(self, u, v, w, lambdas=None) -> np.ndarray:
        lam = self.lambdas if lambdas is None else lambdas
        p, avail = self._components(u, v, w)
        weights = lam * avail  # an unseen context gives its weight to the lower orders
        return (weights * p).sum(1) / weights.sum(1)

    def fit_lambdas(self, valid: np.ndarray, pad: int) -> np.ndarray:
        """Deleted interpolation: the four mixture weights that maximise the likelihood of
        held-out data (softmax-parametrised, L-BFGS)."""
        t = np.concatenate([[pad, pad], np.asarray(valid, dtype=np.int64)])
        p, avail = self._components(t[:-2], t[1:-1], t[2:])

        def nll(theta: np.ndarray) -> float:
            lam = np.exp(theta - theta.max())
            weights = lam * avail
            return -np.log((weights * p).sum(1) / weights.sum(1)).mean()

        res = optimize.minimize(nll, np.zeros(4), method="L-BFGS-B")
        lam = np.exp(res.x - res.x.max())
        self.lambdas = lam / lam.sum()
        return self.lambdas

    # Scoring -----------------------------------------------------------------------------
    def prob(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """P(w | u, v) elementwise."""
        u, v, w = (np.asarray(a, dtype=np.int64) for a in (u, v, w))
        return self._kn(u, v, w) if self.kind == "kneser_ney" else self._interp(u, v, w)

    def distribution(self, u: int, v: int) -> np.ndarray:
        """P(. | u, v) over the whole vocabulary, (V,)."""
        w = np.arange(self.V)
        return self.prob(np.full(self.V, u), np.full(self.V, v), w)

    def target_probs(self, tokens: np.ndarray, pad: int) -> np.ndarray:
        """P(tokens[t] | tokens[t-2], tokens[t-1]) for every t, words before the start read
        as `pad` (the end-of-sentence symbol), as the NPLM reads them."""
        t = np.concatenate([[pad, pad], np.asarray(tokens, dtype=np.int64)])
        return self.prob(t[:-2], t[1:-1], t[2:])

    def perplexity(self, tokens: np.ndarray, pad: int) -> float:
        return math.exp(-np.log(self.target_probs(tokens, pad)).mean())


def trigram_of(task) -> Trigram:
    """The interpolated trigram of an LM task's train split, weights fit on its valid split
    (cached on the task, shared by its copies)."""
    from models.data.lm import EOS
    if "trigram" not in task.cache:
        model = Trigram(task.train.tokens.numpy(), len(task.vocab), "interpolated")
        model.fit_lambdas(task.dev.tokens.numpy(), pad=task.vocab.stoi[EOS])
        task.cache["trigram"] = model
    return task.cache["trigram"]


def ngram_perplexities(task, kind: str, split=None) -> dict[str, float]:
    """Perplexity of the interpolated trigram and/or Kneser-Ney, in the NPLM's tokens: on
    valid as `dev_*` metrics with the interpolation weights, or on `split` (the final
    evaluation's test split) as plain `perplexity`, `<kind>_perplexity`."""
    from models import metrics
    from models.data.lm import EOS
    from models.errors import UserError
    kinds = ["interpolated", "kneser_ney"] if kind == "both" else [kind]
    if any(k not in ("interpolated", "kneser_ney") for k in kinds):
        raise UserError(f"model.kind must be interpolated, kneser_ney or both, not {kind!r}.")
    eos = task.vocab.stoi[EOS]
    tokens = (task.dev if split is None else split).tokens.numpy()
    name = metrics.dev if split is None else (lambda k: k)
    out = {}
    for k in kinds:
        model = trigram_of(task) if k == "interpolated" else Trigram(task.train.tokens.numpy(),
                                                                      len(task.vocab), k)
        out[name(f"{k}_perplexity")] = model.perplexity(tokens, pad=eos)
        if k == "interpolated" and split is None:
            out |= {f"lambda_{order}": float(v) for order, v in
                    zip(("trigram", "bigram", "unigram", "uniform"), model.lambdas)}
    out[name(metrics.PERPLEXITY)] = out[name(f"{kinds[0]}_perplexity")]
    return out
