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
    """A random-weight llama GGUF whose matrices are Q8_0 blocks drawn directly (no float pass): synth's
    writer, so metadata, vocab and tensor names match ``synth.write_llama_gguf(..., quant="Q8_0")``."""
    return synth.write_llama_gguf(path, instruct=instruct, shape=shape, seed=seed, quant="Q8_0", name=name,
                                  direct_q8_0=True)
