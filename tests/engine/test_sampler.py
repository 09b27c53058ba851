"""The worker's short candidate array picks exactly the tokens llama.cpp's full sampler chain picks."""

from __future__ import annotations

from tests.engine.sampler_check import SETTINGS, generations


def test_short_array_samples_what_the_full_chain_samples(tiny_base):
    runs = generations(tiny_base, "Once upon a time")
    for params, (short, full) in zip(SETTINGS, runs):
        assert len(full) > 0, params
        assert short == full, params


def test_a_tie_falls_back_to_the_full_array_and_still_samples_the_same(tiny_base, monkeypatch):
    # Every token takes the fallback (the full n_vocab array, rebuilt each time: top-k sorts it in place).
    from desktop.engine.sampling import Sampler

    monkeypatch.setattr(Sampler, "_has_tie", lambda self, values: True)
    runs = generations(tiny_base, "Once upon a time", SETTINGS[:5])
    for params, (short, full) in zip(SETTINGS[:5], runs):
        assert len(full) > 0, params
        assert short == full, params


def test_has_tie_looks_at_the_k_plus_one_best_values_only():
    import numpy as np

    from desktop.engine.sampling import Sampler

    sampler = object.__new__(Sampler)
    sampler.np, sampler.k = np, 2
    values = np.array([0.5, 3.0, 1.0, 2.0, 0.5], dtype=np.float32)
    assert not sampler._has_tie(values)  # the tie (0.5) is below the 3 best
    values[2] = 2.0  # the 2nd and 3rd best are equal: which one top-2 keeps depends on the array's order
    assert sampler._has_tie(values)
    assert sampler._has_tie(np.array([1.0, 1.0], dtype=np.float32))
