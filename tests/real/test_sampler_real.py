"""On both real vocabularies (262k and 49k tokens), the worker's short candidate array samples the same
tokens, and reports the same top-5 ids, as llama.cpp's chain over the whole vocabulary."""

from __future__ import annotations

import pytest

from tests.engine.sampler_check import SETTINGS, generations


@pytest.mark.parametrize("which", ["gemma", "smol"])
def test_real_model_samples_match_the_full_chain(real_models, which):
    runs = generations(getattr(real_models, which), "The history of the city begins in")
    for params, (short, full) in zip(SETTINGS, runs):
        assert len(full) >= 10, params
        assert short == full, params
