"""Each seed's dropout mask comes from its own generator, stacked or alone."""

import pytest
import torch

from models.noise import dropout_mask, noise_generator, stacked_dropout_masks

CPU, F32 = torch.device("cpu"), torch.float32


@pytest.mark.parametrize("shape, p", [((64, 300), 0.3), ((7,), 0.5), ((2, 3, 5), 0.9)])
def test_stacked_masks_are_each_seeds_mask_bit_for_bit(shape, p):
    seeds, shape = [11, 3, 2024], torch.Size(shape)
    alone = [noise_generator(s) for s in seeds]
    stacked = [noise_generator(s) for s in seeds]
    for _ in range(3):  # and each generator moves on as far as alone: the next draws agree too
        want = torch.stack([dropout_mask(shape, p, g, CPU, F32) for g in alone])
        got = stacked_dropout_masks(shape, p, stacked, CPU, F32)
        assert got.shape == (3, *shape) and torch.equal(got, want)
