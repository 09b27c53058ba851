"""The worker process: one loaded model, driven over a pipe. The only place llama_cpp is imported.

The hot loop talks to llama.cpp's C API through llama-cpp-python's ctypes bindings (``llama_decode`` +
a ``llama_sampler`` chain), not the high-level ``Llama`` class: that class costs ~5-10 % decode speed and
allocates an n_batch x n_vocab score buffer we don't need. Top-k logprobs come from the last logits
(``llama_get_logits_ith``), never from ``logits_all``.

The pipe carries the typed messages of ``desktop.engine.messages``: requests ``Complete`` / ``Chat``
(streamed: ``Token`` per token, then one ``Final``), ``Render`` / ``Tokenize`` / ``Score`` / ``VocabId`` (answered by ``Done`` or
``Failed``) and ``Close``. Loading answers ``Done(LoadInfo)`` or ``Failed``. A ``Token``'s logprob is NaN unless
the request asked for logprobs.
"""

from __future__ import annotations

import codecs
import ctypes
import math
import os
import re
import secrets
import sys
import time
from typing import Any

from desktop.core.chat_template import render_chat
from desktop.core.errors import (
    ContextOverflow,
    EngineError,
    ModelFileError,
    TandemError,
)
from desktop.core.logs import tail
from desktop.engine import native
from desktop.engine.messages import (
    STREAMING,
    Chat,
    Close,
    Complete,
    Done,
    Failed,
    Final,
    Render,
    Score,
    Token,
    Tokenize,
    VocabId,
)
from desktop.engine.sampling import Sampler
from desktop.engine.types import FinalEvent, GenerationStats, LoadInfo, LoadOptions, SamplingParams

# Filled in by worker_main once llama_cpp is imported (keeps this module importable for tests of helpers).
L: Any = None
np: Any = None


def default_threads() -> int:
    """Roughly the physical core count: llama.cpp decodes fastest without hyper-threads."""
    n = os.cpu_count() or 2
    return max(1, n // 2) if n > 4 else n


def _strlen_abort_callback():
    """A zero-overhead abort callback: libc's strlen on our 2-byte shared flag [flag, 0] returns 1 (true)
    once the flag is set and 0 otherwise, without entering Python between graph nodes."""
    try:
        if sys.platform == "win32":
            libc = ctypes.CDLL("msvcrt")
        else:
            libc = ctypes.CDLL(None)
        address = ctypes.cast(libc.strlen, ctypes.c_void_p).value
        return L.ggml_abort_callback(address) if address else None
    except (OSError, AttributeError):
        return None


class Runner:
    """Owns the llama.cpp model, context and the tokens currently held in its KV cache."""

    def __init__(self, path: str, options: LoadOptions, cancel_flag, log_path: str | None):
        self.path = path
        self.options = options
        self.cancel_flag = cancel_flag  # shared ctypes array: [flag, 0]
        self.log_path = log_path
        t0 = time.perf_counter()
        L.llama_backend_init()
        self.offload_supported = bool(L.llama_supports_gpu_offload())
        mparams = L.llama_model_default_params()
        gpu_layers = options.gpu_layers
        if gpu_layers == "auto":
            gpu_layers = 999 if self.offload_supported else 0
        mparams.n_gpu_layers = int(gpu_layers)
        mparams.use_mmap = bool(options.use_mmap)
        model = L.llama_model_load_from_file(path.encode("utf-8"), mparams)
        if not model:
            raise ModelFileError(self._load_failure_reason())
        self.model = model
        self.vocab = L.llama_model_get_vocab(model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        # llama.cpp returns the GGUF's u32 context length as int32: a file claiming >= 2**31 reads as
        # negative. Treat that (and 0) as unknown, so the default context stays min(trained, 4096).
        self.n_ctx_train = max(0, L.llama_model_n_ctx_train(model))
        n_ctx = options.n_ctx or min(self.n_ctx_train or 4096, 4096)
        self.threads = options.threads or default_threads()
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        offload = self.offload_supported and int(gpu_layers) > 0
        cparams.n_batch = min(options.n_batch, n_ctx)
        cparams.n_ubatch = min(options.effective_ubatch(offload), cparams.n_batch)
        cparams.n_threads = self.threads
        cparams.n_threads_batch = self.threads
        cparams.no_perf = True
        cparams.swa_full = bool(options.swa_full)
        if options.flash_attn is None:  # llama.cpp's own choice per model and device (see LoadOptions)
            cparams.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_AUTO
        else:
            cparams.flash_attn_type = (L.LLAMA_FLASH_ATTN_TYPE_ENABLED if options.flash_attn
                                       else L.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        try:
            _check_context_memory(model, n_ctx, int(gpu_layers) > 0 and self.offload_supported)
        except EngineError:
            L.llama_model_free(model)
            raise
        ctx = L.llama_init_from_model(model, cparams)
        if not ctx:
            L.llama_model_free(model)
            raise EngineError(f"llama.cpp could not create a context of {n_ctx} tokens for this model "
                              f"(out of memory?). Try a smaller context. {self._last_error_line()}".strip())
        self.ctx = ctx
        self.n_ctx = L.llama_n_ctx(ctx)
        self.current_threads = self.threads
        self.n_batch = L.llama_n_batch(ctx)
        self.memory = L.llama_get_memory(ctx)
        # With a window-sized sliding-window cache, positions older than the window are dropped as decoding
        # goes on: a kept prefix is only usable if the window before its end is still cached.
        self.n_swa = 0 if options.swa_full else max(0, L.llama_model_n_swa(model))
        self._abort_cb = _strlen_abort_callback()
        if self._abort_cb is None:  # fall back to a Python callback (costs a little per graph node)
            self._abort_cb = L.ggml_abort_callback(lambda _data: bool(self.cancel_flag[0]))
        L.llama_set_abort_callback(ctx, self._abort_cb, ctypes.addressof(self.cancel_flag))
        self.tokens: list[int] = []  # what the KV cache holds, position by position
        self.full_chain_sampling = False  # True: llama_sampler_sample over the whole vocabulary (tests compare)
        self.piece_cache: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._one = (L.llama_token * 1)()
        self._lse_buf = None  # scratch for _logprobs
        self.bos = L.llama_vocab_bos(self.vocab)
        self.eos = L.llama_vocab_eos(self.vocab)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.chat_template = self._meta("tokenizer.chat_template")
        self.bos_text = self._special_text(self.bos)
        self.eos_text = self._special_text(self.eos)
        n_layer = L.llama_model_n_layer(model)
        n_embd = L.llama_model_n_embd(model)
        n_head = max(1, L.llama_model_n_head(model))
        n_head_kv = L.llama_model_n_head_kv(model)
        kv_bytes = 2 * 2 * n_layer * self.n_ctx * (n_embd * n_head_kv // n_head)
        actual_gpu = min(int(gpu_layers), n_layer + 1) if self.offload_supported else 0
        self.info = LoadInfo(
            path=path,
            name=self._meta("general.name") or os.path.basename(path),
            architecture=self._meta("general.architecture") or "unknown",
            n_ctx=self.n_ctx,
            n_ctx_train=self.n_ctx_train,
            n_vocab=self.n_vocab,
            n_layer=n_layer,
            n_params=int(L.llama_model_n_params(model)),
            gpu_layers=actual_gpu,
            backend=gpu_backend_name() if actual_gpu > 0 else "CPU",
            load_s=time.perf_counter() - t0,
            model_bytes=int(L.llama_model_size(model)),
            kv_cache_bytes=kv_bytes,
            chat_template=self.chat_template,
            bos_text=self.bos_text,
            eos_text=self.eos_text,
            threads=self.threads,
            n_ubatch=int(cparams.n_ubatch),
        )

    # ----- helpers -------------------------------------------------------------------------------
    def _last_error_line(self) -> str:
        lines = [ln for ln in tail(self.log_path, 60).splitlines()
                 if "error" in ln.lower() or "failed" in ln.lower()]
        return lines[-1].strip() if lines else ""

    def _load_failure_reason(self) -> str:
        """The most specific reason llama.cpp logged. Its last lines are generic ("failed to load model");
        the real cause is the "error loading model:" line, or for GGUF parse errors the gguf line before."""
        name = os.path.basename(self.path)
        lines = [ln.strip() for ln in tail(self.log_path, 60).splitlines()
                 if "error" in ln.lower() or "failed" in ln.lower()]
        detail = lines[-1] if lines else ""
        for i in range(len(lines) - 1, -1, -1):
            if "error loading model:" in lines[i]:
                detail = lines[i].split("error loading model:", 1)[1].strip()
                if "failed to load model from" in detail and i > 0:
                    detail = lines[i - 1]
                break
        detail = re.sub(r"^[A-Za-z_][A-Za-z0-9_:]*: ", "", detail).rstrip(".")
        detail = detail or "llama.cpp could not read it"
        return f"Can't load {name}: {detail}."

    def _meta(self, key: str) -> str | None:
        size = L.llama_model_meta_val_str(self.model, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        L.llama_model_meta_val_str(self.model, key.encode(), buf, size + 1)
        return buf.value.decode("utf-8", "replace")

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.piece(token, special=True).decode("utf-8", "replace")

    def piece(self, token: int, special: bool = False) -> bytes:
        if not special:
            cached = self.piece_cache.get(token)
            if cached is not None:
                return cached
        buf = self._piece_buf
        n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        data = buf.raw[:n]
        if not special:
            self.piece_cache[token] = data
        return data

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8", "replace")
        capacity = len(data) + 8
        arr = (L.llama_token * capacity)()
        n = L.llama_tokenize(self.vocab, data, len(data), arr, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            arr = (L.llama_token * capacity)()
            n = L.llama_tokenize(self.vocab, data, len(data), arr, capacity, add_special, parse_special)
        return list(arr[:n])

    def render(self, messages, system) -> str:
        return render_chat(self.chat_template, messages, system=system, bos_token=self.bos_text,
                           eos_token=self.eos_text, use_alarm=True)

    def chat_tokens(self, messages, system) -> list[int]:
        text = self.render(messages, system)
        # Most templates write the BOS text themselves; don't add a second one.
        add_bos = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
        return self.tokenize(text, add_special=add_bos, parse_special=True)

    def completion_tokens(self, prompt: str) -> list[int]:
        tokens = self.tokenize(prompt, add_special=True, parse_special=False)
        if not tokens:
            raise EngineError("The prompt is empty: type some text for the model to continue.")
        return tokens

    def check_fits(self, n_prompt: int) -> None:
        if n_prompt >= self.n_ctx:
            raise ContextOverflow(
                f"The prompt is {n_prompt:,} tokens but the model's context holds {self.n_ctx:,}: "
                f"shorten the prompt or load the model with a larger context.", n_prompt, self.n_ctx)

    def use_threads(self, threads: int | None) -> None:
        """This request's CPU threads (None: the count the model was loaded with)."""
        wanted = threads or self.threads
        if wanted != self.current_threads:
            L.llama_set_n_threads(self.ctx, wanted, wanted)
            self.current_threads = wanted

    def cancelled(self) -> bool:
        return bool(self.cancel_flag[0])

    # ----- evaluation ----------------------------------------------------------------------------
    def _reuse_prefix(self, tokens: list[int], need_logits_from: int) -> int:
        """Keep the longest cached prefix (but re-evaluate from ``need_logits_from``); returns its length."""
        common = 0
        limit = min(len(self.tokens), len(tokens), need_logits_from)
        while common < limit and self.tokens[common] == tokens[common]:
            common += 1
        # The sliding window before `common` must still be cached (read before trimming: a trim can empty it).
        if self.n_swa and common > 0 and L.llama_memory_seq_pos_min(self.memory, 0) > max(0, common - self.n_swa):
            common = 0
        if common < len(self.tokens):
            if common == 0 or not L.llama_memory_seq_rm(self.memory, 0, common, -1):
                L.llama_memory_clear(self.memory, True)
                common = 0
            del self.tokens[common:]
        return common

    def _decode(self, tokens: list[int]) -> None:
        """Evaluate tokens after what the cache holds (logits only for the last one)."""
        for start in range(0, len(tokens), self.n_batch):
            if self.cancelled():
                raise _Cancelled()
            chunk = tokens[start:start + self.n_batch]
            arr = (L.llama_token * len(chunk))(*chunk)
            rc = L.llama_decode(self.ctx, L.llama_batch_get_one(arr, len(chunk)))
            if rc != 0:
                self._after_failed_decode()
                if rc == 2 or self.cancelled():
                    raise _Cancelled()
                if rc == 1:
                    raise ContextOverflow(
                        f"The context is full ({self.n_ctx:,} tokens).", len(self.tokens) + len(chunk), self.n_ctx)
                raise EngineError(f"llama.cpp failed to evaluate the prompt (code {rc}).")
            self.tokens.extend(chunk)

    def _after_failed_decode(self) -> None:
        # An aborted batch may leave partial entries: trim the cache back to what we know it holds.
        if not L.llama_memory_seq_rm(self.memory, 0, len(self.tokens), -1):
            L.llama_memory_clear(self.memory, True)
            self.tokens.clear()

    def _decode_one(self, token: int) -> int:
        self._one[0] = token
        return L.llama_decode(self.ctx, L.llama_batch_get_one(self._one, 1))

    # ----- sampling ------------------------------------------------------------------------------
    def _make_sampler(self, p: SamplingParams, seed: int, prompt_tokens: list[int]) -> Sampler:
        return Sampler(self.vocab, self.n_vocab, p, seed, prompt_tokens, full_chain=self.full_chain_sampling)

    def _logprobs(self, token: int, k: int, candidates=None):
        """The chosen token's logprob and the top ``k`` (ranked among ``candidates`` when the sampler says they
        hold the k best logits: a few hundred ids instead of the whole vocabulary)."""
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        top_logit = float(logits.max())
        # log-sum-exp in one scratch buffer: no temporaries of n_vocab floats per token (211 -> 144 µs at 32k)
        buf = self._lse_buf
        if buf is None or buf.shape != logits.shape:
            buf = self._lse_buf = np.empty_like(logits)
        np.subtract(logits, top_logit, out=buf)
        np.exp(buf, out=buf)
        lse = top_logit + math.log(float(buf.sum()))
        chosen = float(logits[token]) - lse
        if k <= 0:
            return chosen, ()
        k = min(k, self.n_vocab)
        if candidates is not None:
            idx = candidates[np.argpartition(logits[candidates], -k)[-k:]] if len(candidates) > k else candidates
        else:
            idx = np.argpartition(logits, -k)[-k:]
        idx = idx[np.argsort(logits[idx])[::-1]]
        top = tuple(
            (self.piece(int(i)).decode("utf-8", "backslashreplace"), int(i), float(logits[i]) - lse) for i in idx
        )
        return chosen, top

    # ----- the stream ----------------------------------------------------------------------------
    def generate(self, prompt_tokens: list[int], p: SamplingParams, send) -> FinalEvent:
        t_start = time.perf_counter()
        p.validate()
        self.check_fits(len(prompt_tokens))
        seed = p.seed if p.seed is not None else secrets.randbelow(2**32 - 1)
        sampler = self._make_sampler(p, seed, prompt_tokens)
        n_prompt = len(prompt_tokens)
        stats = dict(prompt_tokens=n_prompt, seed=seed)
        emitted: list[str] = []
        try:
            common = self._reuse_prefix(prompt_tokens, n_prompt - 1)
            stats["prompt_eval_tokens"] = n_prompt - common
            try:
                self._decode(prompt_tokens[common:])
            except _Cancelled:
                return self._final("cancelled", emitted, stats, t_start, None, 0)
            t_prefill = time.perf_counter()
            stats["prefill_s"] = t_prefill - t_start
            stats["prefill_tps"] = (n_prompt - common) / stats["prefill_s"] if stats["prefill_s"] > 0 else 0.0
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            stops = tuple(s for s in p.stop if s)
            pending: list[tuple[str, int, float, tuple]] = []  # held back: may start a stop string
            want_logprobs = p.logprobs > 0
            t_first = None
            n_generated = 0
            finish = "length"
            stop_string_hit = False
            flag = self.cancel_flag
            vocab = self.vocab
            perf_counter = time.perf_counter
            in_llama = 0.0  # seconds inside llama_decode while decoding: the rest is this loop's own cost
            while n_generated < p.max_tokens:
                if flag[0]:
                    finish = "cancelled"
                    break
                if len(self.tokens) >= self.n_ctx:
                    finish = "length"
                    break
                token = sampler.sample(self.ctx)
                if L.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                if want_logprobs:
                    logprob, top = self._logprobs(token, p.logprobs, sampler.best_ids(p.logprobs))
                else:
                    logprob, top = math.nan, ()
                text = decoder.decode(self.piece(token))
                n_generated += 1
                if t_first is None:
                    t_first = time.perf_counter()
                if stops:
                    pending.append((text, token, logprob, top))
                    joined = "".join(x[0] for x in pending)
                    cut = _find_stop(joined, stops)
                    if cut is not None:
                        _flush(pending, cut, emitted, send, cut_crossing=True)
                        finish = "stop"
                        stop_string_hit = True
                        break
                    _flush(pending, len(joined) - _held_suffix(joined, stops), emitted, send)
                else:
                    emitted.append(text)
                    send(Token(text, token, logprob, top))
                if n_generated >= p.max_tokens:
                    break  # no need to evaluate a token nothing will follow
                t_llama = perf_counter()
                rc = self._decode_one(token)
                in_llama += perf_counter() - t_llama
                if rc != 0:
                    self._after_failed_decode()
                    finish = "cancelled" if (rc == 2 or flag[0]) else "length"
                    break
                self.tokens.append(token)
            else:
                finish = "length"
            if pending and not stop_string_hit:
                _flush(pending, len("".join(x[0] for x in pending)), emitted, send)
            # Bytes of a character the model never finished (max tokens hit mid-character) are dropped:
            # every event's text stays valid UTF-8 and the events add up to the final text.
            stats["decode_llama_s"] = in_llama
            return self._final(finish, emitted, stats, t_start, t_first, n_generated)
        finally:
            sampler.free()

    def _final(self, finish, emitted, stats, t_start, t_first, n_generated) -> FinalEvent:
        t_end = time.perf_counter()
        decode_s = (t_end - t_first) if t_first else 0.0
        stats.setdefault("prompt_eval_tokens", 0)
        stats.setdefault("prefill_s", t_end - t_start)
        return FinalEvent(
            finish_reason=finish,
            text="".join(emitted),
            stats=GenerationStats(
                completion_tokens=n_generated,
                ttft_s=(t_first - t_start) if t_first else 0.0,
                decode_s=decode_s,
                decode_tps=(n_generated - 1) / decode_s if n_generated > 1 and decode_s > 0 else 0.0,
                **stats,
            ),
        )

    # ----- scoring -------------------------------------------------------------------------------
    def score(self, prompt: str, continuation, as_chat: bool, system: str | None, top_k: int = 0):
        """Log-probabilities of the continuation's own tokens given the prompt; no sampling.

        ``continuation`` is text, or a list of token ids (scored exactly as given: what a generation
        produced, with no re-tokenization). With ``top_k`` > 0 each token also carries its rank over the
        whole vocabulary and the model's top-k alternatives, from the same logits (see ``_rank_and_top``).
        """
        if not isinstance(continuation, str):
            ids = [int(t) for t in continuation]
            bad = next((t for t in ids if not 0 <= t < self.n_vocab), None)
            if bad is not None:
                raise EngineError(f"Token id {bad} is not in this model's vocabulary of {self.n_vocab:,} tokens.")
            if as_chat:
                text = self.render([{"role": "user", "content": prompt}], system)
                add_bos = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
                prompt_tokens = self.tokenize(text, add_special=add_bos, parse_special=True)
            else:
                prompt_tokens = self.completion_tokens(prompt)
            full = prompt_tokens + ids
        elif as_chat:
            text = self.render([{"role": "user", "content": prompt}], system)
            add_bos = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
            prompt_tokens = self.tokenize(text, add_special=add_bos, parse_special=True)
            plain = self.tokenize(continuation, add_special=False, parse_special=False)
            if plain == self.tokenize(continuation, add_special=False, parse_special=True):
                # Tokenized together, as generation saw the reply: alone, SentencePiece would prefix a space.
                full = self.tokenize(text + continuation, add_special=add_bos, parse_special=True)
            else:  # the reply contains special-token text, which must stay plain text
                full = prompt_tokens + plain
        else:
            prompt_tokens = self.completion_tokens(prompt)
            full = self.tokenize(prompt + continuation, add_special=True, parse_special=False)
        if full[:len(prompt_tokens)] != prompt_tokens:
            # A token merged across the boundary (the template's "\n" + a reply's "\n\n" -> "\n\n\n"): it
            # would be scored as the reply's and carry the prompt's text. Keep the prompt's own tokens.
            full = prompt_tokens + self.tokenize(continuation, add_special=False, parse_special=False)
        n_keep = 0
        while n_keep < min(len(prompt_tokens), len(full)) and prompt_tokens[n_keep] == full[n_keep]:
            n_keep += 1
        n_keep = max(n_keep, 1)
        targets = full[n_keep:]
        if not targets:
            return ()
        self.check_fits(len(full))
        common = self._reuse_prefix(full, n_keep - 1)
        batch = L.llama_batch_init(self.n_batch, 0, 1)
        results = []
        try:
            pos = common
            todo = full[common:]
            while todo:
                if self.cancelled():
                    raise _Cancelled()
                chunk, todo = todo[:self.n_batch], todo[self.n_batch:]
                batch.n_tokens = len(chunk)
                wanted = []
                for i, tok in enumerate(chunk):
                    p = pos + i
                    batch.token[i] = tok
                    batch.pos[i] = p
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    # logits at position p predict token p + 1
                    need = n_keep - 1 <= p < len(full) - 1
                    batch.logits[i] = need
                    if need:
                        wanted.append((i, p))
                rc = L.llama_decode(self.ctx, batch)
                if rc != 0:
                    self._after_failed_decode()
                    raise _Cancelled() if rc == 2 else EngineError(f"llama.cpp failed to score (code {rc}).")
                self.tokens.extend(chunk)
                for batch_i, p in wanted:
                    logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, batch_i), shape=(self.n_vocab,))
                    top = float(logits.max())
                    lse = top + math.log(float(np.exp(logits - top).sum()))
                    tok = full[p + 1]
                    entry = (self.piece(tok).decode("utf-8", "backslashreplace"), tok, float(logits[tok]) - lse)
                    if top_k > 0:
                        entry += self._rank_and_top(logits, tok, top_k, lse)
                    results.append(entry)
                pos += len(chunk)
        finally:
            L.llama_batch_free(batch)
        return tuple(results)

    def _rank_and_top(self, logits, token: int, k: int, lse: float) -> tuple[int, tuple]:
        """The rank of ``token`` among the whole vocabulary (1 = the highest logit) and the top ``k``.

        Ties are broken by token id, lower first: the order llama.cpp's greedy sampler uses (it keeps the
        first maximum), so a greedy token has rank 1 and ``top[i]`` always has rank ``i + 1``."""
        value = logits[token]
        rank = 1 + int(np.count_nonzero(logits > value)) + int(np.count_nonzero(logits[:token] == value))
        k = min(k, self.n_vocab)
        part = np.argpartition(logits, -k)[-k:]
        kth = logits[part].min()
        above = part[logits[part] > kth]  # everything above the k-th value is inside the partition
        ties = np.flatnonzero(logits == kth)[:k - len(above)]
        chosen = np.concatenate([above, ties])
        chosen = chosen[np.lexsort((chosen, -logits[chosen]))]
        top = tuple((self.piece(int(i)).decode("utf-8", "backslashreplace"), int(i), float(logits[i]) - lse)
                    for i in chosen)
        return rank, top

    def vocab_id(self) -> str:
        """Token count and a hash of every token's text (lengths, then bytes): equal for two models that
        tokenize alike. Computed once (~0.1 s for 262k tokens) and kept."""
        cached = getattr(self, "_vocab_id", None)
        if cached is None:
            import hashlib

            get_text, vocab = L.llama_vocab_get_text, self.vocab
            texts = [get_text(vocab, i) or b"" for i in range(self.n_vocab)]
            digest = hashlib.sha256(np.fromiter(map(len, texts), dtype="<u4", count=len(texts)).tobytes())
            digest.update(b"".join(texts))
            cached = self._vocab_id = f"{self.n_vocab}:{digest.hexdigest()[:20]}"
        return cached

    def close(self) -> None:
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)


def _check_context_memory(model, n_ctx: int, offload: bool) -> None:
    """Refuse a context whose KV cache and attention buffer alone exceed this machine's total memory.

    llama.cpp does not fail fast there: a context of 10 million tokens on a tiny model spent 15 s, and
    2**31 tokens over a minute, allocating before giving up. Only the physically impossible is refused
    (total RAM + VRAM, not free memory, and the compute buffer counted at its lower estimate).
    """
    from desktop.core import sysmem
    from desktop.core.fit import human_bytes, kv_cache_bytes, overhead_bytes

    total = sysmem.total_ram()
    if not total:
        return
    if offload:
        total += sum(d["memory_total"] for d in list_devices() if d["type"] != "CPU")
    n_head = max(1, L.llama_model_n_head(model))
    need = (kv_cache_bytes(L.llama_model_n_layer(model), n_ctx, L.llama_model_n_embd(model), n_head,
                           L.llama_model_n_head_kv(model) or n_head)
            + overhead_bytes(0, n_ctx, n_head))
    if need > total:
        raise EngineError(f"A context of {n_ctx:,} tokens needs about {human_bytes(need)} of memory for this "
                          f"model's cache, more than this machine has ({human_bytes(total)}). "
                          "Load it with a smaller context.")


class _Cancelled(Exception):
    pass


def _find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _held_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could still grow into a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def _flush(pending: list, upto: int, emitted: list[str], send, cut_crossing: bool = False) -> None:
    """Emit held tokens whose text lies before character ``upto``. A token crossing ``upto`` stays held,
    unless ``cut_crossing`` (a stop string begins there): then its text before the stop is emitted."""
    offset = 0
    count = 0
    for text, token, logprob, top in pending:
        end = offset + len(text)
        if end <= upto:
            emitted.append(text)
            send(Token(text, token, logprob, top))
        elif cut_crossing and offset < upto:
            emitted.append(text[:upto - offset])
            send(Token(text[:upto - offset], token, logprob, top))
            count += 1
            break
        else:
            break
        count += 1
        offset = end
    del pending[:count]


def gpu_backend_name() -> str:
    devices = [d for d in list_devices() if d["type"] != "CPU"]
    if not devices:
        return "CPU"
    name = devices[0]["name"]
    for known in ("CUDA", "Metal", "MTL", "Vulkan", "ROCm", "HIP", "SYCL", "OpenCL", "CANN", "MUSA"):
        if name.upper().startswith(known.upper()):
            return {"MTL": "Metal", "HIP": "ROCm"}.get(known, known)
    return name


def _ggml_lib():
    try:
        from llama_cpp import _ggml

        return _ggml.libggml
    except Exception as exc:  # an unusual build without the ggml bindings: no device list, CPU assumed
        print(f"tandem: no ggml device list: {exc}", file=sys.stderr)  # the worker's log
        return None


def list_devices() -> list[dict]:
    """GPU and CPU devices from ggml's backend registry (name, description, type, memory)."""
    lib = _ggml_lib()
    if lib is None or not hasattr(lib, "ggml_backend_dev_count"):
        return []
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                            ctypes.POINTER(ctypes.c_size_t)]
    types = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "ACCEL"}
    out = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        out.append({
            "name": (lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
            "description": (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
            "type": types.get(lib.ggml_backend_dev_type(dev), "other"),
            "memory_free": free.value,
            "memory_total": total.value,
        })
    return out


def hardware_report() -> dict:
    import importlib.metadata

    L.llama_backend_init()
    info = (L.llama_print_system_info() or b"").decode(errors="replace")
    devices = list_devices()
    gpus = [d for d in devices if d["type"] != "CPU"]
    features = sorted({part.split(" = ")[0].strip() for seg in info.split("|") for part in [seg]
                       if " = 1" in part})
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(sys.modules.get("llama_cpp"), "__version__", "unknown")
    return {
        "llama_cpp_python": version,
        "build_backend": gpu_backend_name() if gpus else "CPU",
        "gpu_offload_supported": bool(L.llama_supports_gpu_offload()),
        "cpu_features": features,
        "system_info": info.strip(),
        "devices": devices,
        "gpus": [{"name": d["name"], "description": d["description"], "memory_total": d["memory_total"],
                  "memory_free": d["memory_free"]} for d in gpus],
        "cpu_count": os.cpu_count(),
        "default_threads": default_threads(),
        "platform": sys.platform,
    }


def _import_llama():
    global L, np
    native.load()
    L, np = native.L, native.np


def _redirect_output(log_path: str | None) -> None:
    """Native stderr/stdout go to this worker's log; the client shows its tail if the worker dies."""
    # On a GGML_ASSERT, ggml attaches gdb (when installed) to print a backtrace: 2-4 s before the process
    # dies, so a corrupt file's clean error came late. The assert line itself (file:line) still lands here.
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    if not log_path:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.dup2(fd, 1)
    os.close(fd)


def _die_with_parent() -> None:
    """Never outlive the app, even if it is SIGKILLed. (Not PR_SET_PDEATHSIG: that fires when the
    *thread* that started us ends, and the app starts workers from short-lived loader threads.)"""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(conn, path: str, options: LoadOptions, cancel_flag, log_path: str | None) -> None:
    """Entry point of the worker process."""
    _redirect_output(log_path)
    _die_with_parent()
    try:
        _import_llama()
        runner = Runner(path, options, cancel_flag, log_path)
    except TandemError as exc:
        conn.send(Failed(exc))
        return
    except Exception as exc:
        conn.send(Failed(EngineError(f"Loading failed: {type(exc).__name__}: {exc}")))
        return
    conn.send(Done(runner.info))
    serve(conn, runner)


def hardware_main(conn, log_path: str | None) -> None:
    _redirect_output(log_path)
    _die_with_parent()
    try:
        _import_llama()
        conn.send(Done(hardware_report()))
    except Exception as exc:
        conn.send(Failed(EngineError(f"Could not read the hardware report: {exc}")))


def _handle(msg, runner: Runner, send) -> None:
    """Answer one request (raises what the request's failure should become)."""
    if isinstance(msg, Complete):
        runner.use_threads(msg.threads)
        send(Final(runner.generate(runner.completion_tokens(msg.prompt), msg.params, send)))
    elif isinstance(msg, Chat):
        runner.use_threads(msg.threads)
        send(Final(runner.generate(runner.chat_tokens(msg.messages, msg.system), msg.params, send)))
    elif isinstance(msg, Render):
        send(Done(runner.render(msg.messages, msg.system)))
    elif isinstance(msg, Tokenize):
        send(Done(runner.tokenize(msg.text, add_special=msg.special, parse_special=msg.special)))
    elif isinstance(msg, Score):
        send(Done(runner.score(msg.prompt, msg.continuation, msg.as_chat, msg.system, msg.top_k)))
    elif isinstance(msg, VocabId):
        send(Done(runner.vocab_id()))
    else:
        send(Failed(EngineError(f"unknown request {msg!r}")))


def _failure(error: TandemError, streaming: bool) -> Final | Failed:
    """A stream ends with an error FinalEvent; any other request answers ``Failed``."""
    return Final(FinalEvent("error", "", error=error)) if streaming else Failed(error)


def serve(conn, runner: Runner) -> None:
    send = conn.send
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if isinstance(msg, Close):
            runner.close()
            send(Done(None))
            break
        streaming = isinstance(msg, STREAMING)
        try:
            _handle(msg, runner, send)
        except _Cancelled:
            send(Final(FinalEvent("cancelled", "")) if streaming else Failed(EngineError("cancelled")))
        except TandemError as exc:
            send(_failure(exc, streaming))
        except ValueError as exc:  # SamplingParams.validate
            send(_failure(EngineError(str(exc)), streaming))
        except (BrokenPipeError, EOFError, OSError):
            break
        except Exception as exc:  # a bug of ours: report it, keep the model loaded
            import traceback

            traceback.print_exc()
            try:
                send(_failure(EngineError(f"Internal engine error: {type(exc).__name__}: {exc}"), streaming))
            except OSError:
                break
