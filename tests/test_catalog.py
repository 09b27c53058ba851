"""The catalog of base/instruct pairs is complete and honest; the fit estimate does its arithmetic right."""

from __future__ import annotations

import json
import re

import pytest

from desktop.core.catalog import catalog_path, load_catalog, parse_catalog
from desktop.core.errors import LibraryError
from desktop.core.fit import FITS, TIGHT, WONT_FIT, estimate_fit, kv_cache_bytes
from desktop.hub.files import quant_from_name

GiB = 1 << 30


def test_every_family_is_a_complete_pair():
    catalog = load_catalog()
    assert len(catalog.families) >= 8
    assert len({f.family for f in catalog.families}) >= 5
    for fam in catalog.families:
        assert fam.license and fam.context_length >= 2048 and fam.shape.n_layer > 0
        for kind in ("base", "instruct"):
            variant = fam.variant(kind)
            assert re.match(r"^[\w.-]+/[\w.-]+-GGUF$", variant.repo, re.I), variant.repo
            default = variant.file_for()
            assert default.quant == variant.default_quant and default.size > 10_000_000
            assert variant.default_quant in ("Q4_K_M", "Q8_0")
            assert "Q4_K_M" in variant.quants or "Q8_0" in variant.quants
            for f in variant.files:
                assert f.file.lower().endswith(".gguf") and "/" not in f.file
                assert quant_from_name(f.file) == f.quant, f.file  # the label matches the file name
                assert f.evidence.startswith(("code-index", "model-card", "unconfirmed:")), f.evidence
        # The defaults people download first are ones we actually saw somewhere.
        assert fam.base.file_for().confirmed and fam.instruct.file_for().confirmed, fam.id


def test_instruct_and_base_files_are_different_models():
    for fam in load_catalog().families:
        base_names = {f.file.lower() for f in fam.base.files}
        assert not base_names & {f.file.lower() for f in fam.instruct.files}
        assert "instruct" not in " ".join(base_names) and "-it" not in " ".join(base_names)


def test_smallest_pair_that_fits_grows_with_memory():
    catalog = load_catalog()
    assert catalog.smallest_pair_that_fits(256 << 20) is None
    small = catalog.smallest_pair_that_fits(2 * GiB)
    assert small is not None and small.pair_fit(2 * GiB).verdict == FITS
    sizes = [f.base.file_for().size + f.instruct.file_for().size for f in catalog.pairs_by_size()]
    assert sizes == sorted(sizes)
    assert catalog.smallest_pair_that_fits(64 * GiB) == catalog.pairs_by_size()[0]


def test_lookup_by_file_name_and_sibling():
    catalog = load_catalog()
    fam, kind, f = catalog.match_file("LLAMA-3.2-1B.Q8_0.GGUF")
    assert (fam.id, kind, f.quant) == ("llama3.2-1b", "base", "Q8_0")
    assert catalog.sibling_files("Llama-3.2-1B.Q8_0.gguf")[0].file == "Llama-3.2-1B-Instruct-Q8_0.gguf"
    with pytest.raises(LibraryError, match="no catalog entry"):
        catalog.get("nope")


def test_malformed_catalog_is_refused_with_the_reason():
    data = json.loads(catalog_path().read_text())
    del data["families"][0]["instruct"]
    with pytest.raises(LibraryError, match="instruct must be an object"):
        parse_catalog(data)
    data = json.loads(catalog_path().read_text())
    data["families"][1]["base"]["default_quant"] = "Q3_K_S"
    with pytest.raises(LibraryError, match="default quant"):
        parse_catalog(data)
    data = json.loads(catalog_path().read_text())
    data["families"][2]["base"]["files"]["Q4_K_M"]["file"] = "../x.gguf"
    with pytest.raises(LibraryError, match="bad file name"):
        parse_catalog(data)


def test_kv_cache_formula():
    # f16 K and V: 2 x 2 bytes x layers x context x n_embd x n_head_kv / n_head
    assert kv_cache_bytes(24, 4096, 896, 14, 2) == 2 * 2 * 24 * 4096 * 896 * 2 // 14
    assert kv_cache_bytes(28, 1000, 1024, 16, 8, head_dim=128) == 2 * 2 * 28 * 1000 * 128 * 8


def test_fit_verdicts_and_explanation():
    args = dict(model_bytes=4 * GiB, n_layer=32, n_embd=4096, n_head=32, n_head_kv=8)
    fits = estimate_fit(**args, n_ctx=4096, free_ram=16 * GiB)
    assert fits.verdict == FITS and fits.needed_bytes == fits.weights_bytes + fits.kv_bytes + fits.overhead_bytes
    assert fits.kv_bytes == kv_cache_bytes(32, 4096, 4096, 32, 8)
    assert "weights" in fits.explanation and "KV cache for 4,096 tokens" in fits.explanation
    tight = estimate_fit(**args, n_ctx=4096, free_ram=int(fits.needed_bytes * 1.1))
    assert tight.verdict == TIGHT
    wont = estimate_fit(**args, n_ctx=131072, free_ram=8 * GiB)
    assert wont.verdict == WONT_FIT and wont.suggested_ctx and wont.suggested_ctx < 131072
    assert estimate_fit(**args, n_ctx=wont.suggested_ctx, free_ram=8 * GiB).verdict == FITS
    assert estimate_fit(**args, n_ctx=131072, free_ram=8 * GiB, free_vram=64 * GiB).verdict == FITS
    assert "could not be read" in estimate_fit(**args, n_ctx=4096, free_ram=None).explanation
