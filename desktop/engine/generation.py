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
        sender = send = TokenSender(send)
        n_prompt = len(prompt_tokens)
        stats = dict(prompt_tokens=n_prompt, seed=seed)
        emitted: list[str] = []
        try:
            common = self._reuse_prefix(prompt_tokens, n_prompt - 1)
            stats["prompt_eval_tokens"] = n_prompt - common
            try:
                self._decode(prompt_tokens[common:])
            except Cancelled:
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
                    if p.emit_eog:  # its entry, with no text: the server's echo + logprobs counts it
                        logprob, top = (self._logprobs(token, p.logprobs, sampler.best_ids(p.logprobs))
                                        if want_logprobs else (math.nan, ()))
                        n_generated += 1
                        if t_first is None:
                            t_first = time.perf_counter()
                        if pending:
                            _flush(pending, len("".join(x[0] for x in pending)), emitted, send)
                        send(Token("", token, logprob, top))
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
