"""The token stream: sample, detokenize, hold back what may start a stop string, send, evaluate, repeat.

The hot loop of the worker. Everything it does per token besides ``llama_decode`` is work llama-bench never
does, so it is kept to the few calls it needs: the sampler (``sampling.Sampler``, a short candidate array),
a cached piece per token, an incremental UTF-8 decoder and a ``Token`` message down the pipe (``TokenSender``
puts the tokens of the same 30 ms in one message).
``GenerationStats.decode_llama_s`` records the time inside ``llama_decode`` so the rest can be measured.
"""

from __future__ import annotations

import codecs
import math
import secrets
import time

from desktop.engine.messages import Token, Tokens
from desktop.engine.native import L, np
from desktop.engine.runner import Cancelled, RunnerCore
from desktop.engine.sampling import Sampler
from desktop.engine.types import FinalEvent, GenerationStats, SamplingParams


class Generating(RunnerCore):
    """``generate``: a prompt's tokens in, ``Token`` messages out, one ``FinalEvent`` returned."""

    # ----- sampling ------------------------------------------------------------------------------
    def _make_sampler(self, p: SamplingParams, seed: int, prompt_tokens: list[int]) -> Sampler:
        return Sampler(self.vocab, self.n_vocab, p, seed, prompt_tokens, full_chain=self.full_chain_sampling)

    def _logprobs(self, token: int, k: int, candidates=None, idx: int = -1):
        """The chosen token's logprob and the top ``k`` (ranked among ``candidates`` when the sampler says they
        hold the k best logits: a few hundred ids instead of the whole vocabulary), from batch position ``idx``."""
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, idx), shape=(self.n_vocab,))
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
        sender = TokenSender(send)
        out = Output(self, p, sender)
        n_prompt = len(prompt_tokens)
        stats = dict(prompt_tokens=n_prompt, seed=seed)
        try:
            common = self._reuse_prefix(prompt_tokens, n_prompt - 1)
            stats["prompt_eval_tokens"] = n_prompt - common
            try:
                self._decode(prompt_tokens[common:])
            except Cancelled:
                return self._final("cancelled", out.emitted, stats, t_start, None, 0)
            t_prefill = time.perf_counter()
            stats["prefill_s"] = t_prefill - t_start
            stats["prefill_tps"] = (n_prompt - common) / stats["prefill_s"] if stats["prefill_s"] > 0 else 0.0
            finish = "length"
            flag = self.cancel_flag
            take = out.take
            max_tokens = p.max_tokens
            perf_counter = time.perf_counter
            in_llama = 0.0  # seconds inside llama_decode while decoding: the rest is this loop's own cost
            while out.n_generated < max_tokens:
                if flag[0]:
                    finish = "cancelled"
                    break
                if len(self.tokens) >= self.n_ctx:
                    finish = "length"
                    break
                token = sampler.sample(self.ctx)
                end = take(token, sampler)
                if end is not None:
                    finish = end
                    break
                if out.n_generated >= max_tokens:
                    break  # no need to evaluate a token nothing will follow
                t_llama = perf_counter()
                rc = self._decode_one(token)
                in_llama += perf_counter() - t_llama
                if rc != 0:
                    self._after_failed_decode()
                    finish = "cancelled" if (rc == 2 or flag[0]) else "length"
                    break
                self.tokens.append(token)
            out.close()
            stats["decode_llama_s"] = in_llama
            return self._final(finish, out.emitted, stats, t_start, out.t_first, out.n_generated)
        finally:
            sampler.free()
            sender.flush()  # every token before the final event

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


class Output:
    """One stream's output: each sampled token becomes its text (held back while it may start a stop string),
    its logprobs and a ``Token`` message. ``generate`` (one request) and ``batching`` (slots) share it; a
    slot sets ``idx``, its place in the shared batch, before each ``take``."""

    __slots__ = ("runner", "send", "decoder", "stops", "pending", "emitted", "n_generated", "t_first",
                 "stop_hit", "k", "emit_eog", "idx", "vocab", "is_eog")

    def __init__(self, runner: Generating, p: SamplingParams, send) -> None:
        self.runner, self.send = runner, send
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.stops = tuple(s for s in p.stop if s)
        self.pending: list[tuple[str, int, float, tuple]] = []  # held back: may start a stop string
        self.emitted: list[str] = []
        self.n_generated = 0
        self.t_first: float | None = None
        self.stop_hit = False
        self.k, self.emit_eog, self.idx = p.logprobs, p.emit_eog, -1
        self.vocab, self.is_eog = runner.vocab, L.llama_vocab_is_eog

    def take(self, token: int, sampler: Sampler) -> str | None:
        """Emit ``token`` (just sampled); "stop" when the stream ends with it (an end token, a stop string)."""
        k = self.k
        if self.is_eog(self.vocab, token):
            if self.emit_eog:  # its entry, with no text: the server's echo + logprobs counts it
                logprob, top = (self.runner._logprobs(token, k, sampler.best_ids(k), self.idx)
                                if k > 0 else (math.nan, ()))
                self.n_generated += 1
                if self.t_first is None:
                    self.t_first = time.perf_counter()
                if self.pending:
                    _flush(self.pending, len("".join(x[0] for x in self.pending)), self.emitted, self.send)
                self.send(Token("", token, logprob, top))
            return "stop"
        if k > 0:
            logprob, top = self.runner._logprobs(token, k, sampler.best_ids(k), self.idx)
        else:
            logprob, top = math.nan, ()
        text = self.decoder.decode(self.runner.piece(token))
        self.n_generated += 1
        if self.t_first is None:
            self.t_first = time.perf_counter()
        stops = self.stops
        if stops:
            pending = self.pending
            pending.append((text, token, logprob, top))
            joined = "".join(x[0] for x in pending)
            cut = _find_stop(joined, stops)
            if cut is not None:
                _flush(pending, cut, self.emitted, self.send, cut_crossing=True)
                self.stop_hit = True
                return "stop"
            _flush(pending, len(joined) - _held_suffix(joined, stops), self.emitted, self.send)
        else:
            self.emitted.append(text)
            self.send(Token(text, token, logprob, top))
        return None

    def close(self) -> None:
        """Send what is still held back (not after a stop string). Bytes of a character the model never
        finished are dropped: every event's text stays valid UTF-8 and the events add up to the final text."""
        if self.pending and not self.stop_hit:
            _flush(self.pending, len("".join(x[0] for x in self.pending)), self.emitted, self.send)


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


SEND_EVERY_S = 0.03


class TokenSender:
    """Sends tokens to the app's process at most every ``SEND_EVERY_S`` (~30 times a second, the rate a pane
    paints at), the first at once: each message wakes that process, and on a machine whose cores are all
    decoding the woken reader preempts the decode (0.1-0.2 ms a message, measured on Gemma 3 270M at 2
    threads on 2 cores). A token is held at most one token's time, and only when tokens come faster than
    that; ``flush`` sends what is held (before the final event)."""

    __slots__ = ("_send", "_held", "_last")

    def __init__(self, send) -> None:
        self._send = send
        self._held: list[Token] = []
        self._last = -math.inf

    def __call__(self, token: Token) -> None:
        self._held.append(token)
        now = time.perf_counter()
        if now - self._last >= SEND_EVERY_S:
            self._last = now
            self.flush()

    def flush(self) -> None:
        held = self._held
        if held:
            self._held = []
            self._send(held[0] if len(held) == 1 else Tokens(tuple(held)))
