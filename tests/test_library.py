"""The local library: scanning, broken files with reasons, pairs, import/remove, discovery, the cache."""

from __future__ import annotations

import os
import shutil

import pytest

from desktop.core import gguf_meta, library, library_cache
from desktop.core.errors import LibraryError, ModelFileError
from desktop.core.library import Library, family_key


@pytest.fixture
def lib_dir(tmp_path):
    path = tmp_path / "models"
    path.mkdir()
    return path


def _lib(lib_dir, tmp_path, **kwargs):
    kwargs.setdefault("hf_cache", tmp_path / "no-hf")
    kwargs.setdefault("lmstudio", [])
    return Library(lib_dir, cache_file=tmp_path / "cache.json", **kwargs)


def test_scan_lists_models_with_kind_and_pair(lib_dir, tmp_path, tiny_base, tiny_instruct):
    shutil.copy(tiny_base, lib_dir / "tiny-base.gguf")
    shutil.copy(tiny_instruct, lib_dir / "tiny-instruct.gguf")
    entries = {e.name: e for e in _lib(lib_dir, tmp_path).scan()}
    assert set(entries) == {"tiny-base", "tiny-instruct"}
    base, instruct = entries["tiny-base"], entries["tiny-instruct"]
    assert (base.kind, instruct.kind) == ("base", "instruct")
    assert base.pair == instruct.path and instruct.pair == base.path
    assert base.source == "library" and base.ok and base.metadata.architecture == "llama"
    assert base.file_size == tiny_base.stat().st_size


def test_broken_files_are_listed_with_reasons_and_parts_are_not(lib_dir, tmp_path, tiny_base):
    (lib_dir / "notes.gguf").write_text("not a model")
    (lib_dir / "cut.gguf").write_bytes(tiny_base.read_bytes()[:300_000])
    (lib_dir / "empty.gguf").write_bytes(b"")
    (lib_dir / "downloading.gguf.part").write_bytes(tiny_base.read_bytes()[:1000])
    (lib_dir / "downloading.gguf.part.json").write_text("{}")
    entries = {e.name: e for e in _lib(lib_dir, tmp_path).scan()}
    assert set(entries) == {"notes", "cut", "empty"}
    assert entries["notes"].broken.startswith("not a GGUF file")
    assert entries["cut"].broken.startswith("truncated: tensor")
    assert "0 bytes" in entries["empty"].broken
    assert all(e.kind is None and e.pair is None for e in entries.values())


def test_rescan_uses_the_metadata_cache_until_a_file_changes(lib_dir, tmp_path, tiny_base, monkeypatch):
    shutil.copy(tiny_base, lib_dir / "a.gguf")
    _lib(lib_dir, tmp_path).scan()
    calls = []
    real = gguf_meta.read_metadata
    monkeypatch.setattr(library_cache, "read_metadata", lambda p: calls.append(p) or real(p))
    fresh = _lib(lib_dir, tmp_path)  # a new process would read the persisted cache
    assert [e.name for e in fresh.scan()] == ["a"] and calls == []
    (lib_dir / "a.gguf").write_bytes(b"GGUF broken now")
    assert fresh.scan()[0].broken and len(calls) == 1


def test_split_models_are_one_entry_and_a_missing_part_is_broken(lib_dir, tmp_path, tiny_base, tiny_instruct):
    shutil.copy(tiny_base, lib_dir / "big-Q8_0-00001-of-00002.gguf")
    shutil.copy(tiny_instruct, lib_dir / "big-Q8_0-00002-of-00002.gguf")
    shutil.copy(tiny_base, lib_dir / "half-00001-of-00002.gguf")
    entries = {e.name: e for e in _lib(lib_dir, tmp_path).scan()}
    assert set(entries) == {"big-Q8_0", "half"}
    big = entries["big-Q8_0"]
    assert len(big.parts) == 2 and big.file_size == tiny_base.stat().st_size + tiny_instruct.stat().st_size
    assert big.metadata.parameters == 2 * gguf_meta.read_metadata(tiny_base).parameters
    assert entries["half"].broken == "incomplete split model: missing part 00002"


def test_catalog_names_pair_and_fix_the_kind(lib_dir, tmp_path, tiny_base, tiny_instruct):
    # A base file that (like Qwen's) ships a chat template is still the base model: the catalog says so.
    shutil.copy(tiny_instruct, lib_dir / "Qwen2.5-0.5B.Q4_K_M.gguf")
    shutil.copy(tiny_instruct, lib_dir / "qwen2.5-0.5b-instruct-q4_k_m.gguf")
    entries = {e.name: e for e in _lib(lib_dir, tmp_path).scan()}
    base, instruct = entries["Qwen2.5-0.5B.Q4_K_M"], entries["qwen2.5-0.5b-instruct-q4_k_m"]
    assert base.kind == "base" and base.catalog_id == "qwen2.5-0.5b" and base.repo == "QuantFactory/Qwen2.5-0.5B-GGUF"
    assert instruct.kind == "instruct" and instruct.pair == base.path and base.pair == instruct.path


def test_pairs_by_family_and_size_outside_the_catalog(lib_dir, tmp_path, tiny_base, tiny_instruct):
    shutil.copy(tiny_instruct, lib_dir / "Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")
    shutil.copy(tiny_base, lib_dir / "qwen2.5-0.5b-q4_k_m.gguf")
    shutil.copy(tiny_base, lib_dir / "qwen2.5-1.5b-q4_k_m.gguf")  # another size: not a sibling
    lib = _lib(lib_dir, tmp_path)
    entries = {e.name: e for e in lib.scan()}
    instruct = entries["Qwen2.5-0.5B-Instruct-Q4_K_M"]
    assert lib.pair_for(instruct).name == "qwen2.5-0.5b-q4_k_m"
    assert entries["qwen2.5-1.5b-q4_k_m"].pair is None


@pytest.mark.parametrize("name, key", [
    ("Qwen2.5-0.5B-Instruct-Q4_K_M", "qwen2.5 0.5b"), ("qwen2.5-0.5b-q4_k_m", "qwen2.5 0.5b"),
    ("Llama-3.2-1B.Q8_0", "llama 3.2 1b"), ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "llama 3.2 1b"),
    ("gemma-3-1b-it-Q4_K_M", "gemma 3 1b"), ("gemma-3-1b-pt.Q4_K_M", "gemma 3 1b"),
    ("Mistral-7B-Instruct-v0.3.Q4_K_M", "mistral 7b v0.3"), ("Mistral-7B-v0.3.Q4_K_M", "mistral 7b v0.3"),
    ("Big-Q4_K_M-00001-of-00002.gguf", "big"),
])
def test_family_key(name, key):
    assert family_key(name) == key


def test_import_copy_link_and_remove(lib_dir, tmp_path, tiny_base, tiny_instruct):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    linked_src = shutil.copy(tiny_instruct, outside / "tiny-instruct.gguf")
    lib = _lib(lib_dir, tmp_path)
    copied = lib.import_file(tiny_base)
    assert copied.path == lib_dir / "tiny-base.gguf" and copied.path.read_bytes() == tiny_base.read_bytes()
    linked = lib.import_file(linked_src, link=True)
    assert linked.linked and linked.path == outside / "tiny-instruct.gguf"
    names = {e.name: e for e in lib.scan()}
    assert names["tiny-base"].pair == linked.path
    assert lib.import_file(tiny_base).path == copied.path  # the same bytes again: nothing to do
    renamed = tmp_path / "other" / "tiny-base.gguf"
    renamed.parent.mkdir()
    shutil.copy(tiny_instruct, renamed)
    with pytest.raises(LibraryError, match="already in the library"):
        lib.import_file(renamed)  # a different file under the same name is refused
    (tmp_path / "junk.gguf").write_text("junk")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        lib.import_file(tmp_path / "junk.gguf")
    assert not (lib_dir / "junk.gguf").exists()

    # Removing the copy deletes it with its leftovers; removing the link leaves the user's file alone.
    (lib_dir / "tiny-base.gguf.part").write_bytes(b"x")
    (lib_dir / "tiny-base.gguf.part.json").write_text("{}")
    (lib_dir / "tiny-base.gguf.tandem.json").write_text("{}")
    removed = lib.remove("tiny-base")
    assert sorted(p.name for p in removed) == ["tiny-base.gguf", "tiny-base.gguf.part", "tiny-base.gguf.part.json",
                                               "tiny-base.gguf.tandem.json"]
    assert lib.remove("tiny-instruct") == []
    assert linked_src.exists()
    assert lib.scan() == []
    with pytest.raises(LibraryError, match="no model named"):
        lib.remove("tiny-base")


def test_remove_a_paused_download_by_name(lib_dir, tmp_path):
    (lib_dir / "half.gguf.part").write_bytes(b"x" * 10)
    (lib_dir / "half.gguf.part.json").write_text("{}")
    removed = _lib(lib_dir, tmp_path).remove("half")
    assert {p.name for p in removed} == {"half.gguf.part", "half.gguf.part.json"}


def test_discovers_hf_cache_and_lmstudio_without_copying(lib_dir, tmp_path, tiny_base, tiny_instruct):
    hub = tmp_path / "hf" / "hub"
    repo = hub / "models--someone--Tiny-GGUF"
    (repo / "blobs").mkdir(parents=True)
    blob = repo / "blobs" / "abc123"
    shutil.copy(tiny_base, blob)
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    os.symlink(blob, snap / "tiny-base-Q8_0.gguf")
    lms = tmp_path / "lmstudio"
    (lms / "someone" / "Tiny-GGUF").mkdir(parents=True)
    shutil.copy(tiny_instruct, lms / "someone" / "Tiny-GGUF" / "tiny-instruct-Q8_0.gguf")
    (lms / "someone" / "Tiny-GGUF" / "mmproj-tiny-F16.gguf").write_bytes(b"GGUF")  # a projector: hidden
    lib = _lib(lib_dir, tmp_path, hf_cache=hub, lmstudio=[lms])
    entries = {e.name: e for e in lib.scan()}
    assert set(entries) == {"tiny-base-Q8_0", "tiny-instruct-Q8_0"}
    hf, lm = entries["tiny-base-Q8_0"], entries["tiny-instruct-Q8_0"]
    assert hf.source == "hf-cache" and hf.repo == "someone/Tiny-GGUF" and hf.ok
    assert lm.source == "lmstudio" and hf.pair == lm.path
    assert list(lib_dir.iterdir()) == []  # nothing copied
    with pytest.raises(LibraryError, match="Hugging Face cache"):
        lib.remove("tiny-base-Q8_0")
    assert blob.exists()


def test_hf_cache_dir_follows_the_hub_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert library.hf_hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert library.hf_hub_cache_dir() == tmp_path / "cache"
