"""Write small random-weight GGUF models that llama.cpp really runs.

Used by the tests (a tiny base and a tiny instruct model), by ``tandem selftest`` and by the benchmarks
(real layer shapes of a 0.5B/1.5B-class model: decode cost depends on shapes and quant types, not on the
trained values). Llama architecture, SentencePiece vocab with all 256 byte tokens as fallback, and a
ChatML chat template for the instruct variant (none for the base one).
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from pathlib import Path

QK8_0 = 32  # values per Q8_0 block
WEIGHT_STD = 0.02  # small random weights keep activations finite through every layer

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = (
    "the of and to in is was for on that with as by at from it an be are this which or his her "
    "who won world cup once upon time there a king queen story list summarize explain write translate "
    "model base instruct answer question france croatia final football team year people water "
    "hello good day night sun moon one two three four five red green blue small large new old"
).split()

# Token types as llama.cpp numbers them (gguf.TokenType).
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6


@dataclass(frozen=True)
class ModelShape:
    """Hyper-parameters of a llama-architecture model."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    context_length: int = 2048
    extra_vocab: int = 0  # pad the vocab with filler tokens up to this many extra entries
    tied_embeddings: bool = False


TINY = ModelShape()
# A 0.5B-class shape (Qwen2.5-0.5B: 24 layers, 896 dims, 14 heads / 2 KV heads, FFN 4864, ~32k vocab here).
SHAPE_0_5B = ModelShape(n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864, context_length=32768,
                        extra_vocab=32000, tied_embeddings=True)
# A 1.5B-class shape (Qwen2.5-1.5B: 28 layers, 1536 dims, 12 heads / 2 KV heads, FFN 8960).
SHAPE_1_5B = ModelShape(n_embd=1536, n_layer=28, n_head=12, n_head_kv=2, n_ff=8960, context_length=32768,
                        extra_vocab=32000, tied_embeddings=True)


def vocab(extra: int = 0) -> tuple[list[str], list[float], list[int]]:
    """tokens, scores, types: specials, the 256 byte tokens, ChatML markers, characters, words, filler."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [_UNKNOWN, _CONTROL, _CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(_BYTE)
    tokens += ["<|im_start|>", "<|im_end|>"]
    types += [_CONTROL, _CONTROL]
    pieces = ["\u2581"] + list(string.ascii_letters + string.digits + string.punctuation)
    pieces += ["\u2581" + c for c in string.ascii_letters]
    # Every prefix of every word too: SentencePiece builds a word by merging adjacent pieces, so the
    # intermediate pieces must exist for whole words to come out as single tokens.
    for w in _WORDS:
        pieces += ["\u2581" + w[:i] for i in range(2, len(w) + 1)] + [w[:i] for i in range(2, len(w) + 1)]
    seen = set(tokens)
    for piece in pieces:
        if piece not in seen:
            seen.add(piece)
            tokens.append(piece)
            types.append(_NORMAL)
    for i in range(extra):
        tokens.append(f"\u2581tok{i}")
        types.append(_NORMAL)
    # SentencePiece merges prefer higher scores; longer pieces score higher so words win over letters.
    scores = [0.0 if t != _NORMAL else -1000.0 + 10.0 * len(tok) for tok, t in zip(tokens, types)]
    return tokens, scores, types


def write_llama_gguf(
    path: str | Path,
    *,
    instruct: bool,
    shape: ModelShape = TINY,
    seed: int = 0,
    quant: str = "F32",
    name: str | None = None,
    chat_template: str | None = None,
    direct_q8_0: bool = False,
    add_bos: bool = True,
) -> Path:
    """Write a random-weight llama GGUF. ``instruct`` adds the ChatML template and makes <|im_end|> the EOS.

    ``quant`` is "F32", "F16" or "Q8_0" (matrices only; norms stay F32, as in real quantized files).
    ``direct_q8_0`` (with "Q8_0") draws the Q8_0 blocks themselves, an fp16 scale and 32 int8 values, instead
    of quantizing float weights: I/O-bound, seconds instead of minutes for 1.5B shapes (the benchmarks).
    ``add_bos=False`` writes a tokenizer that puts no BOS before a text (the server's BOS tests).
    The file is written under a temporary name and renamed when complete: an interrupted write never
    leaves a half-written model behind.
    """
    import gguf  # imported here: only tests, selftest and benchmarks write models
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if direct_q8_0:
        if quant != "Q8_0":
            raise ValueError("direct_q8_0 draws Q8_0 blocks: use it with quant='Q8_0'")
        for dim in (shape.n_embd, shape.n_ff):
            if dim % QK8_0:
                raise ValueError(f"Q8_0 needs row lengths that are multiples of {QK8_0}; got {dim}")
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocab(shape.extra_vocab)
    n_vocab = len(tokens)
    kind = "instruct" if instruct else "base"
    tmp = path.with_name(path.name + ".part")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name or f"Tandem Tiny {kind.title()}")
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    file_type = {"F32": 0, "F16": 1, "Q8_0": 7}[quant]
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(tokens.index("<|im_end|>") if instruct else 2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(add_bos)  # False: a tokenizer that adds no BOS (SmolLM2, Qwen)
    writer.add_add_eos_token(False)
    if instruct:
        writer.add_chat_template(chat_template or CHATML_TEMPLATE)
    elif chat_template:
        writer.add_chat_template(chat_template)

    # Uniform ints in [-127, 127] have a standard deviation of ~73.3; the block scale maps that to WEIGHT_STD.
    q8_scale = np.frombuffer(np.float16(WEIGHT_STD / 73.3).tobytes(), dtype=np.uint8)

    def q8_0_blocks(name: str, rows: int, cols: int) -> None:
        n_blocks = cols // QK8_0
        blocks = np.empty((rows, n_blocks, 2 + QK8_0), dtype=np.uint8)
        blocks[:, :, :2] = q8_scale
        values = rng.integers(-127, 128, size=(rows, n_blocks, QK8_0), dtype=np.int8)
        blocks[:, :, 2:] = values.view(np.uint8)
        writer.add_tensor(name, blocks.reshape(rows, n_blocks * (2 + QK8_0)), raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def matrix(name: str, rows: int, cols: int) -> None:
        if direct_q8_0:
            q8_0_blocks(name, rows, cols)
            return
        data = (rng.standard_normal((rows, cols), dtype=np.float32) * WEIGHT_STD).astype(np.float32)
        if quant == "F16":
            writer.add_tensor(name, data.astype(np.float16))
        elif quant == "Q8_0":
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(name, data)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(shape.n_embd, dtype=np.float32))

    n_embd_kv = shape.n_embd // shape.n_head * shape.n_head_kv
    matrix("token_embd.weight", n_vocab, shape.n_embd)
    norm("output_norm.weight")
    if not shape.tied_embeddings:
        matrix("output.weight", n_vocab, shape.n_embd)
    for i in range(shape.n_layer):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", shape.n_embd, shape.n_embd)
        matrix(f"blk.{i}.attn_k.weight", n_embd_kv, shape.n_embd)
        matrix(f"blk.{i}.attn_v.weight", n_embd_kv, shape.n_embd)
        matrix(f"blk.{i}.attn_output.weight", shape.n_embd, shape.n_embd)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", shape.n_ff, shape.n_embd)
        matrix(f"blk.{i}.ffn_up.weight", shape.n_ff, shape.n_embd)
        matrix(f"blk.{i}.ffn_down.weight", shape.n_embd, shape.n_ff)

    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
