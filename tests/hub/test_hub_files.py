"""Search and file lists against the fake hub: sorting, quant labels, split grouping, hostile names."""

from __future__ import annotations

import pytest

from desktop.core.errors import DownloadError, GatedRepoError, RepoNotFound
from desktop.hub.files import group_gguf, list_gguf_files, quant_from_name, safe_local_name
from desktop.hub.search import search_models


def test_search_returns_gguf_repos_most_downloaded_first(fake_hub):
    fake_hub.add_repo("someone/Popular-Qwen-GGUF", {"a.gguf": b"x"}, downloads=5000, likes=7)
    fake_hub.add_repo("someone/Quiet-Qwen-GGUF", {"b.gguf": b"x"}, downloads=3, gated=True)
    fake_hub.add_repo("someone/Qwen-safetensors", {"model.safetensors": b"x"}, downloads=99999, tags=["pytorch"])
    results = search_models("qwen")
    assert [r.id for r in results] == ["someone/Popular-Qwen-GGUF", "someone/Quiet-Qwen-GGUF"]
    assert results[0].downloads == 5000 and results[0].likes == 7 and not results[0].gated
    assert results[1].gated
    query = [r for r in fake_hub.requests if r.path.startswith("/api/models?")][-1]
    assert "filter=gguf" in query.path and "search=qwen" in query.path and "sort=downloads" in query.path


def test_files_lists_gguf_with_sizes_and_quants(fake_hub, tiny_base):
    files = list_gguf_files("tandem-test/Tiny-GGUF")
    assert [(f.name, f.quant) for f in files] == [("tiny-base-Q8_0.gguf", "Q8_0"),
                                                   ("tiny-instruct-Q8_0.gguf", "Q8_0")]
    assert files[0].size == tiny_base.stat().st_size
    assert files[0].parts == ("tiny-base-Q8_0.gguf",) and not files[0].is_split


def test_split_files_are_one_model_with_their_parts(fake_hub):
    fake_hub.add_repo("someone/Big-GGUF", {
        "Q4_K_M/Big-Q4_K_M-00002-of-00002.gguf": b"b" * 20,
        "Q4_K_M/Big-Q4_K_M-00001-of-00002.gguf": b"a" * 10,
        "Big-Q8_0.gguf": b"c" * 50,
        "Big-IQ4_XS-00001-of-00003.gguf": b"d",  # an incomplete upload: not offered
        "mmproj-Big-F16.gguf": b"e",
    })
    files = list_gguf_files("someone/Big-GGUF")
    assert [(f.name, f.size, f.quant) for f in files] == [
        ("Q4_K_M/Big-Q4_K_M-00001-of-00002.gguf", 30, "Q4_K_M"), ("Big-Q8_0.gguf", 50, "Q8_0")]
    assert files[0].parts == ("Q4_K_M/Big-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/Big-Q4_K_M-00002-of-00002.gguf")
    assert files[0].part_sizes == (10, 20)


@pytest.mark.parametrize("name, quant", [
    ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Q4_K_M"), ("qwen2.5-0.5b-instruct-q8_0.gguf", "Q8_0"),
    ("Llama-3.2-1B.Q5_K_S.gguf", "Q5_K_S"), ("model-IQ4_XS.gguf", "IQ4_XS"), ("m.fp16.gguf", "F16"),
    ("gemma-3-1b-it-BF16.gguf", "BF16"), ("Big-Q6_K-00001-of-00003.gguf", "Q6_K"), ("Q4_0/x-Q4_0.gguf", "Q4_0"),
    ("Model-UD-Q4_K_XL.gguf", "Q4_K_XL"), ("plain.gguf", None),
])
def test_quant_from_name(name, quant):
    assert quant_from_name(name) == quant


@pytest.mark.parametrize("name", ["../evil.gguf", "a/../../evil.gguf", "/etc/evil.gguf", "a\\..\\evil.gguf",
                                  "C:evil.gguf", "sub//x.gguf", "./x.gguf", "", ".hidden.gguf", "x\x00.gguf"])
def test_hostile_names_are_refused_and_never_listed(name):
    with pytest.raises(DownloadError, match="refusing"):
        safe_local_name(name)
    assert group_gguf([(name, 10, None)]) == []


def test_missing_repo_is_a_clear_error(fake_hub):
    with pytest.raises(RepoNotFound, match="nobody/Nothing-GGUF"):
        list_gguf_files("nobody/Nothing-GGUF")
    with pytest.raises(RepoNotFound, match="repository id"):
        list_gguf_files("not a repo")


def test_gated_listing_is_allowed_but_download_needs_a_token(fake_hub, tmp_path):
    from desktop.hub.download import download_blocking

    fake_hub.add_repo("meta/Gated-GGUF", {"g-Q4_K_M.gguf": b"x" * 100}, gated=True)
    assert [f.name for f in list_gguf_files("meta/Gated-GGUF")] == ["g-Q4_K_M.gguf"]
    with pytest.raises(GatedRepoError) as info:
        download_blocking("meta/Gated-GGUF", "g-Q4_K_M.gguf", tmp_path / "models")
    message = str(info.value)
    assert "meta/Gated-GGUF" in message and "token" in message and "licence" in message
    assert list((tmp_path / "models").iterdir()) == []
