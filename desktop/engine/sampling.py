"""Token sampling in the worker: llama.cpp's own sampler chain, fed only the candidates that can matter.

``llama_sampler_sample`` copies every logit into an n_vocab candidate array and runs the chain over it: the
repetition penalties look every candidate up in a hash map, and top-k partially sorts all of them. On Gemma 3's
262,144-token vocabulary that is ~1.5-1.9 ms a token on this machine, work llama-bench never does. With
top-k on (or greedy), only the best logits can survive, so ``Sampler`` hands llama.cpp's same samplers a
short array instead: every token whose logit is at least the (k + h)-th largest, plus the h tokens the
penalties may change. Any other token is below at least k unpenalized ones, so top-k drops it in both cases;
what top-k keeps, and the rest of the chain's work on it (top-p, min-p, temperature, the seeded draw), is the
same. The one thing a short array could change is how ``std::partial_sort`` orders *equal* logits, so when
the survivors hold a tie the full array is built instead. The result is the exact token the full chain picks
for the same seed and settings (tests/engine/test_sampler.py and tests/real/test_sampler_real.py compare
whole generations).

A grammar, or top-k off with a temperature, needs the whole vocabulary: those requests keep
``llama_sampler_sample`` with one chain.
"""

from __future__ import annotations

import ctypes
from collections import deque

from desktop.core.errors import GrammarError
from desktop.engine.native import L, np
from desktop.engine.types import SamplingParams

# The candidate array is given up for the full one when it would hold more than this share of the vocabulary.
_MAX_SHARE = 0.25
STRIDE = 64  # the threshold's sample: every 64th logit (4,096 of Gemma's 262,144)
_TOKEN_DATA = [("id", "<i4"), ("logit", "<f4"), ("p", "<f4")]


def json_schema_to_grammar(schema: str) -> str:
    import json

    from desktop.engine.native import json_schema_to_gbnf

    try:
        json.loads(schema)
        return json_schema_to_gbnf(schema)
    except Exception as exc:
        raise GrammarError(f"The JSON schema can't be used for constrained output: {exc}") from None


def _grammar_sampler(vocab, p: SamplingParams):
    grammar_text = p.grammar
    if p.json_schema:
        grammar_text = json_schema_to_grammar(p.json_schema)
    if not grammar_text:
        return None
    # llama.cpp reads a C string: text after a NUL is dropped, and an empty grammar means "no
    # grammar", so "\0..." was silently ignored. Invalid UTF-8 must be a GrammarError, not a codec one.
    if "\x00" in grammar_text or not grammar_text.strip():
        raise GrammarError("The grammar is empty or contains a NUL character; write GBNF rules with 'root'.")
    grammar = L.llama_sampler_init_grammar(vocab, grammar_text.encode("utf-8", "replace"), b"root")
    if not grammar:
        raise GrammarError("The grammar is not valid GBNF (llama.cpp rejected it); check its rules "
                           "and that it defines 'root'.")
    return grammar


def penalties_on(p: SamplingParams) -> bool:
    """llama.cpp's own test (``is_disabled``): a window of 0, or penalties that change nothing, is off."""
    return p.repeat_last_n > 0 and (p.repeat_penalty != 1.0 or bool(p.frequency_penalty) or bool(p.presence_penalty))


class Sampler:
    """One generation's sampler. ``sample(ctx)`` picks the next token from the last logits and accepts it.

    Two llama.cpp chains: ``pre`` (the penalties, or nothing) and ``post`` (top-k, top-p, min-p, temperature,
    dist; or greedy). Applied one after the other they are the chain the app always used: ``llama_sampler_sample``
    applies its samplers in order and accepts the token into each, which is what ``sample`` does.
    """

    def __init__(self, vocab, n_vocab: int, p: SamplingParams, seed: int, prompt_tokens: list[int],
                 full_chain: bool = False):
        self.L, self.np = L, np
        self.n_vocab = n_vocab
        self.pre = self.post = self.single = None
        grammar = _grammar_sampler(vocab, p)
        greedy = p.temperature <= 0
        # How many of the best raw logits the short array must hold (besides the penalized tokens).
        self.k = 1 if greedy else p.top_k
        self.greedy = greedy
        self.window: deque[int] | None = deque(maxlen=p.repeat_last_n) if penalties_on(p) else None
        n_penalized = p.repeat_last_n if self.window is not None else 0
        short = not full_chain and grammar is None and self.k > 0 and self.k + n_penalized < _MAX_SHARE * n_vocab
        if short:
            self.pre = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            self.post = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            penalties, rest = self.pre, self.post
        else:
            self.single = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            penalties = rest = self.single
            if grammar:
                L.llama_sampler_chain_add(self.single, grammar)
        if self.window is not None:
            L.llama_sampler_chain_add(penalties, L.llama_sampler_init_penalties(
                n_vocab, p.repeat_last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty))
        if greedy:
            L.llama_sampler_chain_add(rest, L.llama_sampler_init_greedy())
        else:
            if p.top_k > 0:
                L.llama_sampler_chain_add(rest, L.llama_sampler_init_top_k(p.top_k))
            if p.top_p < 1.0:
                L.llama_sampler_chain_add(rest, L.llama_sampler_init_top_p(p.top_p, 1))
            if p.min_p > 0.0:
                L.llama_sampler_chain_add(rest, L.llama_sampler_init_min_p(p.min_p, 1))
            L.llama_sampler_chain_add(rest, L.llama_sampler_init_temp(p.temperature))
            L.llama_sampler_chain_add(rest, L.llama_sampler_init_dist(seed))
        if grammar is None and p.repeat_last_n:  # the grammar must not see prompt tokens; the penalties should
            for tok in prompt_tokens[-max(p.repeat_last_n, 0):]:
                self._accept(tok)
        if short:
            self._setup_short()

    def _setup_short(self) -> None:
        np = self.np
        self.n_best = 0
        self._grow(1024)
        self._full = None  # the n_vocab array, made the first time a tie needs it
        self._cur = self.L.llama_token_data_array()
        self._cur_ref = ctypes.byref(self._cur)
        self._mask = np.empty(self.n_vocab, dtype=bool)

    def _grow(self, n: int) -> None:
        self._buf = self.np.zeros(n, dtype=_TOKEN_DATA)
        self._buf_ptr = ctypes.cast(self._buf.ctypes.data, ctypes.POINTER(self.L.llama_token_data))

    def _accept(self, token: int) -> None:
        if self.single is not None:
            self.L.llama_sampler_accept(self.single, token)
        else:
            self.L.llama_sampler_accept(self.pre, token)
            self.L.llama_sampler_accept(self.post, token)
        if self.window is not None:
            self.window.append(token)

    def free(self) -> None:
        for chain in (self.single, self.pre, self.post):
            if chain is not None:
                self.L.llama_sampler_free(chain)
        self.single = self.pre = self.post = None

    # ----- sampling -------------------------------------------------------------------------------
    def sample(self, ctx, idx: int = -1) -> int:
        """The next token, from the logits of batch position ``idx`` (the last evaluated one by default: a
        slot's is its own place in the shared batch); accepted into the samplers."""
        if self.single is not None:
            return self.L.llama_sampler_sample(self.single, ctx, idx)
        L, np = self.L, self.np
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, idx), shape=(self.n_vocab,))
        ids = self._last_ids = self._candidates(logits)
        n = len(ids)
        if n > len(self._buf):
            self._grow(2 * n)
        buf = self._buf
        buf["id"][:n] = ids
        buf["logit"][:n] = logits[ids]
        buf["p"][:n] = 0.0
        token = self._apply(buf, n, self._buf_ptr)
        if token is None:  # a tie among the survivors: the full array, as llama_sampler_sample builds it
            token = self._apply_full(logits)
        self._accept(token)
        return token

    def _candidates(self, logits):
        """Ascending ids: every token with a raw logit >= the (k + h)-th largest, and the h penalized tokens.

        The threshold comes from a strided sample of the logits (every ``STRIDE``-th): its j-th largest value
        has ~STRIDE·j tokens above it on average, so j = need / STRIDE + 4 keeps a few hundred. Whether it
        is low enough is checked, not assumed: if fewer than ``need`` tokens clear it, a lower sample rank is
        tried, then the exact (need)-th value. Two passes over the vocabulary (compare, collect) instead of a
        margin below the top, which kept 60 to 200,000 tokens as the distribution's shape changed.
        """
        np, mask = self.np, self._mask
        penalized = self.window
        need = self.k + (len(set(penalized)) if penalized else 0)
        n_vocab = self.n_vocab
        sample = logits[::STRIDE]
        size = len(sample)
        rank = need // STRIDE + 4
        while rank < size // 4:
            threshold = np.partition(sample, size - rank)[size - rank]
            np.greater_equal(logits, threshold, out=mask)
            count = int(np.count_nonzero(mask))
            if count >= need:
                break
            rank *= 4
        else:  # a flat or -inf-filled tail: the exact threshold
            threshold = np.partition(logits, n_vocab - need)[n_vocab - need]
            np.greater_equal(logits, threshold, out=mask)
            count = int(np.count_nonzero(mask))
        self.n_best = count  # the first n_best of the raw logits' ranking are all in the array
        if penalized:
            mask[np.fromiter(penalized, dtype=np.intp, count=len(penalized))] = True
        return np.flatnonzero(mask)

    def best_ids(self, k: int):
        """Ids holding the k highest raw logits of the last ``sample`` (None when it didn't keep them):
        top-k logprobs then rank ~100 candidates, not the whole vocabulary."""
        if self.single is not None or self.n_best < k:
            return None
        return self._last_ids

    def _apply(self, buf, n: int, ptr) -> int | None:
        """Run pre then post over the first ``n`` entries of ``buf``; None when equal logits would make the
        short array's order differ from the full one's (top-k's partial sort keeps ties in no fixed order)."""
        L, cur = self.L, self._cur
        cur.data = ptr
        cur.size = n
        cur.selected = -1
        cur.sorted = False
        L.llama_sampler_apply(self.pre, self._cur_ref)
        # Greedy needs no check: the array stays in id order, and its first maximum is the full array's.
        if ptr is self._buf_ptr and not self.greedy and self._has_tie(buf["logit"][:n]):
            return None
        L.llama_sampler_apply(self.post, self._cur_ref)
        return int(buf["id"][cur.selected])

    def _has_tie(self, values) -> bool:
        """Whether two of the k + 1 largest values are equal (the k-th and the next decide what top-k keeps)."""
        np = self.np
        m = min(self.k + 1, len(values))
        best = np.partition(values, len(values) - m)[len(values) - m:] if m < len(values) else values.copy()
        best.sort()
        return bool((best[1:] == best[:-1]).any())

    def _apply_full(self, logits) -> int:
        np = self.np
        if self._full is None:
            self._full = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
            self._full_ptr = ctypes.cast(self._full.ctypes.data, ctypes.POINTER(self.L.llama_token_data))
        full = self._full
        full["id"] = np.arange(self.n_vocab, dtype="<i4")  # the last use sorted it in place
        full["logit"] = logits
        full["p"] = 0.0
        token = self._apply(full, self.n_vocab, self._full_ptr)
        assert token is not None
        return token
