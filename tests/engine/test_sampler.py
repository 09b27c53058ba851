"""The worker's short candidate array picks exactly the tokens llama.cpp's full sampler chain picks."""

from __future__ import annotations

from tests.engine.sampler_check import SETTINGS, generations


def test_short_array_samples_what_the_full_chain_samples(tiny_base):
    runs = generations(tiny_base, "Once upon a time")
    for params, (short, full) in zip(SETTINGS, runs):
        assert len(full) > 0, params
        assert short == full, params
