"""The benchmark models: random-weight GGUF files with the real layer shapes of 0.5B/1.5B-class models.

Decode and prefill cost depend on tensor shapes and quant types, not on trained values, so a random
model of the right shape measures what a real one would. ``desktop.core.synth`` writes the same files but
draws float32 weights and quantizes them in numpy (about 25 s for the 0.5B shape and 2-3 minutes for the
1.5B one on 2 cores); here the Q8_0 blocks (an fp16 scale and 32 int8 values) are drawn directly, which
is I/O-bound (a few seconds). The metadata, vocab and chat template are synth's own, so a bench model
differs from ``synth.write_llama_gguf(..., quant="Q8_0")`` only in its random values
(``tests/test_bench_smoke.py`` checks that).

Files are generated once into the cache and reused; a file is written under a temporary name and renamed
when complete, so an interrupted run never leaves a half-written model behind to be reused.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from desktop.core import synth
from desktop.core.synth import ModelShape

SHAPES: dict[str, ModelShape] = {"0.5b": synth.SHAPE_0_5B, "1.5b": synth.SHAPE_1_5B}

# Bump when the generator changes what it writes, so cached files from an older generator are not reused.
GENERATOR_VERSION = 1
QK8_0 = 32  # values per Q8_0 block
_WEIGHT_STD = 0.02  # as synth: small random weights keep activations finite through every layer


@dataclass(frozen=True)
class BenchModel:
    path: Path
    shape_name: str
    instruct: bool
    generated_s: float | None  # None when the cached file was reused

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def cache_dir() -> Path:
    """``TANDEM_BENCH_CACHE`` or ``bench/.cache`` beside this file (git-ignored)."""
    value = os.environ.get("TANDEM_BENCH_CACHE", "").strip()
    path = Path(value).expanduser() if value else Path(__file__).resolve().parent / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_filename(shape_name: str, instruct: bool, seed: int) -> str:
    kind = "instruct" if instruct else "base"
    return f"tandem-bench-{shape_name}-{kind}-q8_0-g{GENERATOR_VERSION}-s{seed}.gguf"


def ensure_model(shape_name: str, *, instruct: bool, seed: int = 0, directory: Path | None = None) -> BenchModel:
    """The cached bench model for this shape, generating it first if it is not there yet."""
    if shape_name not in SHAPES:
        raise ValueError(f"unknown shape {shape_name!r}; choose one of {', '.join(SHAPES)}")
    directory = directory or cache_dir()
    path = directory / model_filename(shape_name, instruct, seed)
    if path.is_file() and path.stat().st_size > 0:
        return BenchModel(path, shape_name, instruct, None)
    started = time.perf_counter()
    write_q8_0_llama_gguf(path, instruct=instruct, shape=SHAPES[shape_name], seed=seed,
                          name=f"Tandem Bench {shape_name.upper()} {'Instruct' if instruct else 'Base'}")
    return BenchModel(path, shape_name, instruct, time.perf_counter() - started)


def write_q8_0_llama_gguf(path: str | Path, *, instruct: bool, shape: ModelShape = synth.TINY, seed: int = 0,
                          name: str | None = None) -> Path:
    """Write a random-weight llama GGUF whose matrices are Q8_0 blocks drawn directly (no float pass).

    Metadata, vocab and tensor names match ``synth.write_llama_gguf(..., quant="Q8_0")``.
    """
    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for dim in (shape.n_embd, shape.n_ff):
        if dim % QK8_0:
            raise ValueError(f"Q8_0 needs row lengths that are multiples of {QK8_0}; got {dim}")
    rng = np.random.default_rng(seed)
    tokens, scores, types = synth.vocab(shape.extra_vocab)
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
    writer.add_file_type(7)  # MOSTLY_Q8_0
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(tokens.index("<|im_end|>") if instruct else 2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if instruct:
        writer.add_chat_template(synth.CHATML_TEMPLATE)

    # Uniform ints in [-127, 127] have a standard deviation of ~73.3; the block scale maps that to _WEIGHT_STD.
    scale = np.frombuffer(np.float16(_WEIGHT_STD / 73.3).tobytes(), dtype=np.uint8)

    def matrix(tensor_name: str, rows: int, cols: int) -> None:
        n_blocks = cols // QK8_0
        blocks = np.empty((rows, n_blocks, 2 + QK8_0), dtype=np.uint8)
        blocks[:, :, :2] = scale
        values = rng.integers(-127, 128, size=(rows, n_blocks, QK8_0), dtype=np.int8)
        blocks[:, :, 2:] = values.view(np.uint8)
        writer.add_tensor(tensor_name, blocks.reshape(rows, n_blocks * (2 + QK8_0)),
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def norm(tensor_name: str) -> None:
        writer.add_tensor(tensor_name, np.ones(shape.n_embd, dtype=np.float32))

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
