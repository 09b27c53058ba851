"""The values that cross the engine's API: options in, a stream of small frozen events out.

One stream serves raw completion and chat alike: zero or more ``TokenEvent`` then exactly one
``FinalEvent``. The CLI, the panes and the benchmarks are all loops over it. These classes are plain
data (no llama_cpp), pickled across the worker pipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to load a model. ``n_ctx=None`` means min(trained context, 4096).

    Defaults chosen from ABBA-interleaved measurements on two real models (Gemma 3 270M Q4_K_M, 262k
    vocabulary; SmolLM2 135M Q4_1) on a shared 2-core x86 VM (figures in README's Performance section). They
    replaced "no flash attention on the CPU", measured on random-weight 0.5B shapes only, which cost the real
    models 12-20 % of llama-bench's decode (issue 12):
    - ``flash_attn=None`` -> llama.cpp's ``auto``: it enables flash attention where the device supports it
      (the CPU included). llama-bench on the real models: +3 % (Gemma) / +12 % (SmolLM2) decode at depth 0,
      +15 % / -3 % at depth 2000, +4 % prefill.
    - ``n_ubatch=None`` -> n_batch (512), llama.cpp's default, on every device. It was 256 on the CPU to halve
      the compute buffer llama.cpp reserves (Gemma 3 270M at n_ctx 4096: 257 vs 515 MiB, the 262k-entry logits
      rows; SmolLM2: 49 vs 98 MiB). But Gemma decoded faster with 512 in the app: 6 ABBA pairs of 64 tokens,
      1 thread, 512/256 median 1.46 (every pair >= 1.0; the machine was heavily loaded, so the size of the
      gain is uncertain, its sign is not), and the worker's own time per token fell from 8.2 to 5.4 ms.
      Against llama-bench (1 thread, 4-5 pairs): Gemma 84.9 -> 87.3 % at depth 0, 79.4 -> 92.8 % at depth
      2000; SmolLM2 78.3 -> 97.3 % at depth 0.
    - ``swa_full=False``: a sliding-window model (Gemma 2/3) keeps only its window in the SWA layers' cache,
      as llama-bench and llama-server do. Decoding deep into a context then costs what the window costs,
      not the whole context. The worker restarts a prompt when the window before a reused prefix is gone.
    - ``n_ctx``: min(trained, 4096), as before. Attention reads only the cells in use (padded to 256), so a
      large context mostly costs memory; the bench loads the app with a context sized like llama-bench's.
    """

    n_ctx: int | None = None
    gpu_layers: int | Literal["auto"] = "auto"
    threads: int | None = None  # None: llama.cpp's default for this machine
    use_mmap: bool = True
    flash_attn: bool | None = None  # None: llama.cpp's "auto" (see above)
    n_batch: int = 512
    n_ubatch: int | None = None  # tokens per compute step; None: n_batch
    swa_full: bool = False  # True: a full-size cache for sliding-window layers too (more memory, no gain here)
    # Slots decoded together in one llama_decode (``tandem serve --parallel N``): N sequences in the KV cache,
    # each holding ``n_ctx`` tokens. The app's own panes keep one slot.
    n_seq: int = 1

    def effective_ubatch(self, offload: bool) -> int:
        return self.n_ubatch or self.n_batch


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """What the worker reports once a model is loaded."""

    path: str
    name: str
    architecture: str
    n_ctx: int
    n_ctx_train: int
    n_vocab: int
    n_layer: int
    n_params: int
    gpu_layers: int
    backend: str  # "CPU", "CUDA", "Metal", "Vulkan", ...
    load_s: float
    model_bytes: int  # size of the weights
    kv_cache_bytes: int  # estimate at n_ctx
    chat_template: str | None
    bos_text: str
    eos_text: str
    threads: int
    n_ubatch: int = 512
    add_bos: bool = False  # llama.cpp's llama_vocab_get_add_bos: its tokenizer puts BOS before a text prompt
    bos_id: int = -1
    eos_id: int = -1
    n_seq: int = 1  # slots decoded together (LoadOptions.n_seq)

    @property
    def kind(self) -> Literal["base", "instruct"]:
        """A model that carries a chat template is an instruct model; without one it is a base model."""
        return "instruct" if self.chat_template else "base"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling settings. ``seed=None`` draws a fresh random seed per call; a pinned seed reproduces exactly."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    grammar: str | None = None  # GBNF
    json_schema: str | None = None  # converted to GBNF
    logprobs: int = 0  # top-k alternatives per token; 0 = none (then each token's logprob is NaN)
    # True: an end-of-generation token is emitted as the stream's last TokenEvent (finish "stop") instead of
    # ending the stream unseen. The server's echo + logprobs needs its entry (lm-eval sums [ctxlen:-1]).
    emit_eog: bool = False

    def validate(self) -> SamplingParams:
        """Raise ValueError with a one-line message for values no sampler accepts."""
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError("temperature must be 0 or more")
        if self.top_k < 0:
            raise ValueError("top-k must be 0 (off) or more")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError("top-p must be between 0 and 1")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError("min-p must be between 0 and 1")
        if self.repeat_penalty <= 0:
            raise ValueError("repeat penalty must be above 0")
        if self.max_tokens < 0:
            raise ValueError("max tokens must be 0 or more")
        if not 0 <= self.logprobs <= 20:
            raise ValueError("logprobs must be between 0 and 20")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ValueError("seed must be between 0 and 4294967295")
        return self


@dataclass(frozen=True, slots=True)
class TopToken:
    """One alternative the model considered at a step."""

    text: str
    token_id: int
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token. ``text`` is always valid UTF-8: a token that ends inside a multi-byte
    character carries "" and the token that completes it carries the whole character."""

    text: str
    token_id: int
    logprob: float
    top: tuple[TopToken, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationStats:
    prompt_tokens: int = 0
    prompt_eval_tokens: int = 0  # after prefix reuse: only these were evaluated
    completion_tokens: int = 0
    ttft_s: float = 0.0
    prefill_tps: float = 0.0
    decode_tps: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_llama_s: float = 0.0  # of decode_s, the time inside llama_decode (the rest is the engine's own)
    seed: int | None = None  # the seed actually used (so a good sample can be pinned)

    def as_json(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "prompt_eval_tokens": self.prompt_eval_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_s": round(self.ttft_s, 6),
            "prefill_tps": round(self.prefill_tps, 3),
            "decode_tps": round(self.decode_tps, 3),
        }


@dataclass(frozen=True, slots=True)
class FinalEvent:
    """The last event of every stream. ``error`` is set exactly when ``finish_reason == "error"``."""

    finish_reason: FinishReason
    text: str
    stats: GenerationStats = field(default_factory=GenerationStats)
    error: Exception | None = None

    @property
    def finish_words(self) -> str:
        return finish_words(self.finish_reason)


FINISH_WORDS = {"stop": "finished", "length": "reached the token limit", "cancelled": "stopped", "error": "failed"}


def finish_words(reason: str) -> str:
    """How a run ended, for a person (the stats lines, the saved runs' Markdown)."""
    return FINISH_WORDS.get(reason, reason)


@dataclass(frozen=True, slots=True)
class ScoredToken:
    """One given token's log-probability. With ``score(..., top_k=N)``: its rank among every token of the
    vocabulary at that position (1 = the model's own first choice) and the model's top-N alternatives."""

    text: str
    token_id: int
    logprob: float
    rank: int | None = None
    top: tuple[TopToken, ...] = ()


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Log-probabilities of a given continuation's exact tokens under a model (no sampling)."""

    tokens: tuple[ScoredToken, ...]

    @property
    def total_logprob(self) -> float:
        return sum(t.logprob for t in self.tokens)

    @property
    def mean_logprob(self) -> float:
        return self.total_logprob / len(self.tokens) if self.tokens else 0.0


@dataclass(frozen=True, slots=True)
class TokenScores:
    """Per-position log-probabilities of a whole prompt given as token ids, scored exactly as given (no BOS
    added): ``tokens[j].logprob`` is log P(token j | tokens before j), with the top-k alternatives at that
    position; ``tokens[0]`` has nothing before it (logprob NaN, no rank, no alternatives). ``next_top`` is
    the distribution after the last token (its top ``next_top_k``, best first, ties to the lower id: the
    greedy next token is ``next_top[0]``)."""

    tokens: tuple[ScoredToken, ...]
    next_top: tuple[TopToken, ...] = ()


Event = TokenEvent | FinalEvent
