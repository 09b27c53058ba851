"""The worker's hold on one loaded model: weights, context, vocabulary and the tokens in its KV cache.

``RunnerCore`` loads a GGUF file through llama.cpp's C API (llama-cpp-python's ctypes bindings, not the
high-level ``Llama`` class: that class costs ~5-10 % decode speed and allocates an n_batch x n_vocab score
buffer we don't need), tokenizes and detokenizes, and evaluates tokens after the longest prefix its cache
already holds. What is done with the logits lives beside it: ``generation.Generating`` (the token stream) and
``scoring.Scoring`` (log-probabilities of given text); ``worker.Runner`` is the three together.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import time

from desktop.core.chat_template import render_chat
from desktop.core.errors import ContextOverflow, EngineError, ModelFileError
from desktop.core.logs import tail
from desktop.engine.hardware import default_threads, gpu_backend_name, list_devices
from desktop.engine.native import L, np
from desktop.engine.types import LoadInfo, LoadOptions


class Cancelled(Exception):
    """The request was stopped through the cancel flag (between tokens, or by llama.cpp's abort callback)."""


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



class RunnerCore:
    """Owns the llama.cpp model, context and the tokens currently held in its KV cache."""

    def __init__(self, path: str, options: LoadOptions, cancel_flag, log_path: str | None):
        self.path = path
        self.options = options
        self.cancel_flag = cancel_flag  # shared ctypes array: [flag, 0]
        self.log_path = log_path
        t0 = time.perf_counter()
        L.llama_backend_init()
        self.offload_supported = bool(L.llama_supports_gpu_offload())
        gpu_layers = self._load_model(path, options)
        n_ubatch = self._create_context(options, gpu_layers)
        self._set_abort_callback()
        self.tokens: list[int] = []  # what the KV cache holds, position by position
        self.full_chain_sampling = False  # True: llama_sampler_sample over the whole vocabulary (tests compare)
        self._read_vocab()
        self.info = self._load_info(gpu_layers, n_ubatch, t0)

    # ----- loading -------------------------------------------------------------------------------
    def _load_model(self, path: str, options: LoadOptions) -> int:
        """Load the weights; returns the GPU layers asked for ("auto": all of them where offload works)."""
        mparams = L.llama_model_default_params()
        gpu_layers = options.gpu_layers
        if gpu_layers == "auto":
            gpu_layers = 999 if self.offload_supported else 0
        mparams.n_gpu_layers = int(gpu_layers)
        mparams.use_mmap = bool(options.use_mmap)
        if not _amx_usable():  # llama.cpp's AMX weight layout would SIGILL on the first multi-token batch
            mparams.use_extra_bufts = False
        model = L.llama_model_load_from_file(path.encode("utf-8"), mparams)
        if not model:
            raise ModelFileError(self._load_failure_reason())
        self.model = model
        self.vocab = L.llama_model_get_vocab(model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        # llama.cpp returns the GGUF's u32 context length as int32: a file claiming >= 2**31 reads as
        # negative. Treat that (and 0) as unknown, so the default context stays min(trained, 4096).
        self.n_ctx_train = max(0, L.llama_model_n_ctx_train(model))
        return int(gpu_layers)

    def _create_context(self, options: LoadOptions, gpu_layers: int) -> int:
        """The llama.cpp context (KV cache, compute buffers); returns its n_ubatch."""
        model = self.model
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
        return int(cparams.n_ubatch)

    def _set_abort_callback(self) -> None:
        self._abort_cb = _strlen_abort_callback()
        if self._abort_cb is None:  # fall back to a Python callback (costs a little per graph node)
            self._abort_cb = L.ggml_abort_callback(lambda _data: bool(self.cancel_flag[0]))
        L.llama_set_abort_callback(self.ctx, self._abort_cb, ctypes.addressof(self.cancel_flag))

    def _read_vocab(self) -> None:
        """Special tokens, the chat template and the scratch buffers detokenizing and decoding reuse."""
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

    def _load_info(self, gpu_layers: int, n_ubatch: int, t0: float) -> LoadInfo:
        model = self.model
        n_layer = L.llama_model_n_layer(model)
        n_embd = L.llama_model_n_embd(model)
        n_head = max(1, L.llama_model_n_head(model))
        n_head_kv = L.llama_model_n_head_kv(model)
        kv_bytes = 2 * 2 * n_layer * self.n_ctx * (n_embd * n_head_kv // n_head)
        actual_gpu = min(int(gpu_layers), n_layer + 1) if self.offload_supported else 0
        return LoadInfo(
            path=self.path,
            name=self._meta("general.name") or os.path.basename(self.path),
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
            n_ubatch=n_ubatch,
            add_bos=self.add_bos,
            bos_id=int(self.bos),
            eos_id=int(self.eos),
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

    def detokenize(self, tokens: list[int]) -> str:
        self.check_ids(tokens)
        return b"".join(self.piece(t, special=True) for t in tokens).decode("utf-8", "replace")

    def check_ids(self, tokens: list[int]) -> list[int]:
        """Token ids as given, each checked against the vocabulary (one line naming the first bad one)."""
        bad = next((t for t in tokens if not 0 <= t < self.n_vocab), None)
        if bad is not None:
            raise EngineError(f"Token id {bad} is not in this model's vocabulary of {self.n_vocab:,} tokens.")
        return tokens

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
                raise Cancelled()
            chunk = tokens[start:start + self.n_batch]
            arr = (L.llama_token * len(chunk))(*chunk)
            rc = L.llama_decode(self.ctx, L.llama_batch_get_one(arr, len(chunk)))
            if rc != 0:
                self._after_failed_decode()
                if rc == 2 or self.cancelled():
                    raise Cancelled()
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


def _amx_usable() -> bool:
    """False on a CPU that reports AMX tiles: in the VMs this project is tested on (Sapphire Rapids hosts,
    kernel 6.18) the tile permission is granted, yet ``tilezero`` in ggml's AMX kernels dies with SIGILL on
    every batch of more than one token (scoring, prefill). Without llama.cpp's extra buffer types the plain
    AVX-512 kernels run. ``TANDEM_AMX=1`` keeps AMX on a host where it works; ``0`` turns it off anywhere."""
    forced = os.environ.get("TANDEM_AMX")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return True
    return "amx_tile" not in flags.split()


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

