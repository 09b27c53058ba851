"""The fast GGUF header reader: right answers on real files, one-line ModelFileError on bad ones, and fast."""

from __future__ import annotations

import struct
import time

import gguf
import numpy as np
import pytest

from desktop.core.errors import ModelFileError
from desktop.core.gguf_meta import FILE_TYPES, GGML_TYPES, classify_kind, read_metadata
from desktop.core.synth import ModelShape, write_llama_gguf


def test_tiny_models_read_like_gguf_reader_says(tiny_base, tiny_instruct):
    for path, kind in ((tiny_base, "base"), (tiny_instruct, "instruct")):
        meta = read_metadata(path)
        ref = gguf.GGUFReader(str(path))  # slow but authoritative; fine on a tiny file
        assert meta.parameters == sum(int(np.prod(t.shape)) for t in ref.tensors)
        assert meta.tensor_count == len(ref.tensors)
        assert meta.architecture == "llama" and meta.kind == kind
        assert meta.quantization == "F32" and meta.file_type == 0
        assert (meta.n_layer, meta.n_embd, meta.n_head, meta.n_head_kv) == (2, 64, 4, 2)
        assert meta.context_length == 2048 and meta.head_dim == 16
        assert meta.vocab_size == len(ref.fields["tokenizer.ggml.tokens"].data)
        assert meta.file_size == path.stat().st_size
        assert meta.bos_token == "<s>"
    base, instruct = read_metadata(tiny_base), read_metadata(tiny_instruct)
    assert not base.has_chat_template and base.chat_template is None
    assert instruct.has_chat_template and "<|im_start|>" in instruct.chat_template
    assert instruct.eos_token == "<|im_end|>" and base.eos_token == "</s>"
    assert base.to_json() == {"name": "Tandem Tiny Base", "architecture": "llama", "parameters": base.parameters,
                              "quantization": "F32", "context_length": 2048, "kind": "base",
                              "has_chat_template": False, "file_size": tiny_base.stat().st_size}


def test_quantization_label_from_file_type_and_from_tensors(tmp_path):
    q8 = read_metadata(write_llama_gguf(tmp_path / "q8.gguf", instruct=False, quant="Q8_0"))
    assert q8.quantization == "Q8_0"
    # Without general.file_type: the type holding most of the 2-D weight bytes.
    path = tmp_path / "nofiletype.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("big.weight", np.zeros((64, 64), dtype=np.float16))
    w.add_tensor("small.weight", np.zeros((4, 4), dtype=np.float32))
    w.add_tensor("norm.weight", np.zeros(4096, dtype=np.float32))  # 1-D: not counted
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()  # noqa: E702
    meta = read_metadata(path)
    assert meta.file_type is None and meta.quantization == "F16"
    assert meta.parameters == 64 * 64 + 16 + 4096


def test_type_tables_match_gguf():
    sizes = gguf.constants.GGML_QUANT_SIZES
    for t in gguf.GGMLQuantizationType:
        assert GGML_TYPES[t.value] == (t.name, *sizes[t]), t
    for ft in gguf.LlamaFileType:
        if ft.name != "GUESSED":
            assert FILE_TYPES[ft.value] == ft.name.removeprefix("MOSTLY_").removeprefix("ALL_"), ft


@pytest.mark.parametrize("template, names, kind", [
    (True, ("Qwen2.5 0.5B Instruct",), "instruct"),
    (False, ("Qwen2.5 0.5B",), "base"),
    (True, ("Qwen3-0.6B-Base",), "base"),  # a base checkpoint that ships a template anyway
    (True, ("Qwen2.5 0.5B",), "instruct"),  # no hint: the template decides
    (False, ("gemma-3-1b-it",), "instruct"),  # an old conversion without a template
    (False, ("Mistral-7B-Instruct-v0.3",), "instruct"),
    (False, ("llama-chat",), "instruct"),
    (False, ("Llama-3.2-1B",), "base"),
    (False, ("Itsy-Model",), "base"),  # "it" only as a whole word
])
def test_kind_rules(template, names, kind):
    assert classify_kind(template, *names) == kind


def _expect(path, fragment):
    with pytest.raises(ModelFileError) as info:
        read_metadata(path)
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
    return message


def test_bad_files_give_one_line_reasons(tmp_path, tiny_base):
    data = tiny_base.read_bytes()
    cases = {
        "empty.gguf": (b"", "only 0 bytes"),
        "text.gguf": (b"hello world, not a model\n" * 10, "not a GGUF file"),
        "magic.gguf": (b"GGML" + data[4:], "not a GGUF file"),
        "v1.gguf": (data[:4] + struct.pack("<I", 1) + data[8:], "unsupported GGUF version 1"),
        "v99.gguf": (data[:4] + struct.pack("<I", 99) + data[8:], "unsupported GGUF version 99"),
        "bigendian.gguf": (data[:4] + struct.pack(">I", 3) + data[8:], "big-endian"),
        "tensors.gguf": (data[:8] + struct.pack("<Q", 1 << 40) + data[16:], "claims"),
        "kvs.gguf": (data[:16] + struct.pack("<Q", 1 << 40) + data[24:], "claims"),
    }
    for name, (content, fragment) in cases.items():
        (tmp_path / name).write_bytes(content)
        _expect(tmp_path / name, fragment)
    _expect(tmp_path / "missing.gguf", "no such file")
    _expect(tmp_path, "folder")


def test_absurd_string_length(tmp_path, tiny_base):
    data = bytearray(tiny_base.read_bytes())
    # The first key's length is the u64 at offset 24.
    data[24:32] = struct.pack("<Q", 1 << 62)
    (tmp_path / "key.gguf").write_bytes(bytes(data))
    _expect(tmp_path / "key.gguf", "claims")


def test_truncation_anywhere_is_caught(tmp_path, tiny_base):
    data = tiny_base.read_bytes()
    offsets = sorted({*range(0, 4096, 97), *range(4096, len(data), len(data) // 40), len(data) - 1})
    for cut in offsets:
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as info:
            read_metadata(path)
        assert "\n" not in str(info.value)
        if cut > 4096:  # past the header: a tensor's data is what is missing
            assert str(info.value).startswith("truncated: tensor"), (cut, str(info.value))
        path.unlink()


def test_tensor_data_out_of_bounds(tmp_path):
    path = tmp_path / "oob.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("a.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()  # noqa: E702
    data = bytearray(path.read_bytes())
    offset_at = data.index(b"a.weight") + len(b"a.weight") + 4 + 16 + 4  # n_dims, 2 dims, type
    data[offset_at:offset_at + 8] = struct.pack("<Q", 1 << 20)
    path.write_bytes(bytes(data))
    _expect(path, "truncated: tensor a.weight")


def test_large_vocab_header_reads_fast(tmp_path):
    """A Llama-3-sized vocabulary (128,256 tokens, 280,000 merges): the walk must stay well under 100 ms."""
    path = tmp_path / "bigvocab.gguf"
    n = 128_256
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("Big Vocab"); w.add_block_count(2); w.add_embedding_length(64)  # noqa: E702
    w.add_head_count(4); w.add_head_count_kv(2); w.add_context_length(131072); w.add_file_type(15)  # noqa: E702
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}\u0120x" for i in range(n)])
    w.add_token_types([1] * n)
    w.add_token_merges([f"\u0120a{i} b{i}" for i in range(280_000)])
    w.add_bos_token_id(128000); w.add_eos_token_id(128009)  # noqa: E702
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.zeros((n // 64, 64), dtype=np.float16))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()  # noqa: E702
    read_metadata(path)  # warm the page cache: we measure parsing, not the disk
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        meta = read_metadata(path)
        timings.append(time.perf_counter() - start)
    best = min(timings)
    print(f"\n128k-vocab header read: best {best * 1000:.1f} ms of {[round(t * 1000, 1) for t in timings]}")
    assert meta.vocab_size == n and meta.quantization == "Q4_K_M" and meta.kind == "instruct"
    assert meta.bos_token == "tok128000\u0120x" and meta.eos_token == "tok128009\u0120x"
    assert best < 0.25  # typically ~50 ms on a busy 2-core CI box; generous for slower runners


def test_synth_shapes_are_consistent(tmp_path):
    shape = ModelShape(n_embd=128, n_layer=3, n_head=8, n_head_kv=2, n_ff=256, context_length=4096)
    meta = read_metadata(write_llama_gguf(tmp_path / "s.gguf", instruct=True, shape=shape))
    assert (meta.n_layer, meta.n_embd, meta.n_head, meta.n_head_kv, meta.head_dim) == (3, 128, 8, 2, 16)


def _vocab_file(path, tokens):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1); w.add_embedding_length(64); w.add_head_count(4)  # noqa: E702
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([1] * len(tokens))
    w.add_bos_token_id(len(tokens) - 2); w.add_eos_token_id(len(tokens) - 1)  # noqa: E702
    w.add_tensor("token_embd.weight", np.zeros((2, 64), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()  # noqa: E702
    return path


def _outcome(path):
    try:
        meta = read_metadata(path)
    except ModelFileError as exc:
        return "error", str(exc)
    return "ok", (meta.vocab_size, meta.bos_token, meta.eos_token, meta.parameters, meta.kv)


@pytest.mark.parametrize("case", ["clean", "empties", "duplicate short", "duplicate long",
                                  "same prefix and suffix", "one huge token", "truncated in vocab"])
def test_numpy_vocab_walk_agrees_with_the_plain_loop(tmp_path, monkeypatch, case):
    """Big vocabularies go through numpy; every outcome (values or exact error) must equal the plain loop's."""
    from desktop.core import gguf_reader

    rng = np.random.default_rng(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzé▁中\x00"
    tokens = [f"{i}" + "".join(rng.choice(list(alphabet), size=rng.integers(0, 40))) for i in range(20_000)]
    if case == "empties":
        tokens[5] = tokens[900] = tokens[17_000] = ""
    elif case == "duplicate short":
        tokens[12_345] = tokens[3]
    elif case == "duplicate long":
        tokens[100] = tokens[19_000] = "x" * 50 + "middle" + "y" * 50
    elif case == "same prefix and suffix":  # same length, first 16 and last 8 bytes: keys collide, texts differ
        tokens[100], tokens[200] = "p" * 16 + "AAAA" + "s" * 8, "p" * 16 + "BBBB" + "s" * 8
    elif case == "one huge token":  # longer than the numpy walk assumes: the loop takes over
        tokens[10_000] = "z" * 70_000
    path = _vocab_file(tmp_path / "v.gguf", tokens)
    if case == "truncated in vocab":
        data = path.read_bytes()
        path.write_bytes(data[:data.index(tokens[15_000].encode()) + 3])
    fast = _outcome(path)
    monkeypatch.setattr(gguf_reader, "_FAST_MIN", 1 << 40)
    slow = _outcome(path)
    assert fast == slow
    expect_error = case in ("duplicate short", "duplicate long", "truncated in vocab")
    assert (fast[0] == "error") == expect_error, fast
    if case.startswith("duplicate"):
        assert "1 duplicate token" in fast[1]
    if fast[0] == "ok":
        assert fast[1][:3] == (20_000, tokens[-2], tokens[-1])
