import pytest
import torch

from models.dan import DAN


def make(**kw) -> DAN:
    args = dict(vocab_size=50, num_classes=3, embed_dim=8, hidden_dims=(16, 12), word_dropout=0.3)
    args.update(kw)
    torch.manual_seed(0)
    return DAN(**args)


def padded_batch() -> torch.Tensor:
    return torch.tensor([[5, 6, 7, 0, 0], [8, 0, 0, 0, 0], [2, 3, 4, 9, 10]])  # (B=3, T=5)


def test_logits_shape_and_nbow():
    assert make()(padded_batch()).shape == (3, 3)
    assert make(hidden_dims=())(padded_batch()).shape == (3, 3)  # 0 hidden layers: NBOW


def test_every_parameter_gets_a_gradient_but_padding():
    model = make(word_dropout=0.0)
    torch.nn.functional.cross_entropy(model(padded_batch()), torch.tensor([0, 1, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.embed.weight.grad[0].abs().sum() == 0  # <pad> never contributes


def test_average_ignores_padding():
    model = make(word_dropout=0.0).eval()
    a = model.embed(torch.tensor([[5, 6, 0, 0]]))
    b = model.embed(torch.tensor([[5, 6]]))
    assert torch.allclose(a, b)
    assert torch.allclose(a, model.embed.weight[[5, 6]].mean(0, keepdim=True))


def test_word_dropout_keeps_a_token_in_every_sentence():
    model = make(word_dropout=0.99)
    tokens = torch.randint(1, 50, (500, 6))
    tokens[:, 4:] = 0  # padding
    torch.manual_seed(1)
    dropped = model.drop_words(tokens)
    kept = dropped != 0
    assert kept.any(1).all()
    assert (kept.sum(1) < 4).float().mean() > 0.9  # almost everything was dropped
    assert (dropped[kept] == tokens[kept]).all()  # survivors are the original tokens
    assert (dropped[:, 4:] == 0).all()


def test_word_dropout_rate_and_off_in_eval():
    model = make(word_dropout=0.3)
    tokens = torch.randint(1, 50, (2000, 10))
    torch.manual_seed(2)
    rate = (model.drop_words(tokens) == 0).float().mean().item()
    assert 0.27 < rate < 0.33
    model.eval()
    x = padded_batch()
    assert torch.equal(model(x), model(x))  # deterministic: nothing dropped


@pytest.mark.parametrize("kw", [dict(word_dropout=1.0), dict(activation="swish"),
                                dict(num_classes=1), dict(hidden_dims=(0,)),
                                dict(embeddings=torch.zeros(3, 8))])
def test_impossible_settings_raise(kw):
    with pytest.raises(ValueError):
        make(**kw)


def test_pretrained_embeddings_are_copied():
    emb = torch.randn(50, 8)
    model = make(embeddings=emb)
    assert torch.allclose(model.embed.weight[1:], emb[1:])
    assert model.embed.weight[0].abs().sum() == 0


def test_hidden_init_range_draws_every_layer_from_its_interval():
    torch.manual_seed(0)
    default = DAN(vocab_size=20, num_classes=2, embed_dim=300, hidden_dims=(300, 300))
    torch.manual_seed(0)
    wide = DAN(vocab_size=20, num_classes=2, embed_dim=300, hidden_dims=(300, 300), hidden_init_range=0.08)
    linears = [m for m in wide.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for m in linears:
        assert m.weight.abs().max() <= 0.08 and m.weight.abs().max() > 0.07  # not torch's ±1/sqrt(300)
    assert max(m.weight.abs().max() for m in default.modules() if isinstance(m, torch.nn.Linear)) < 0.058
