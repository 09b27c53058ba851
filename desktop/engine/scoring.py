"""Scoring: the log-probability of each token of a given text after a prompt, with no sampling.

Cross-scoring (one model's text under the other), perplexity and the alignment lens's token ranks all come
from here. The whole sequence is evaluated in batches with logits kept only where a target token is predicted.
"""

from __future__ import annotations

import math

from desktop.core.errors import EngineError
from desktop.engine.native import L, np
from desktop.engine.runner import Cancelled, RunnerCore


class Scoring(RunnerCore):
    """``score``: log-probabilities (and optionally ranks and top-k) of a continuation's own tokens."""

    # ----- scoring -------------------------------------------------------------------------------
    def score(self, prompt: str, continuation, as_chat: bool, system: str | None, top_k: int = 0):
        """Log-probabilities of the continuation's own tokens given the prompt; no sampling.

        ``continuation`` is text, or a list of token ids (scored exactly as given: what a generation
        produced, with no re-tokenization). With ``top_k`` > 0 each token also carries its rank over the
        whole vocabulary and the model's top-k alternatives, from the same logits (see ``_rank_and_top``).
        """
        if not isinstance(continuation, str):
            ids = self.check_ids([int(t) for t in continuation])
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
        results = []

        def row(p: int, logits, lse: float) -> None:  # logits at position p predict token p + 1
            tok = full[p + 1]
            entry = (self.piece(tok).decode("utf-8", "backslashreplace"), tok, float(logits[tok]) - lse)
            if top_k > 0:
                entry += self._rank_and_top(logits, tok, top_k, lse)
            results.append(entry)

        self._evaluate(full, range(n_keep - 1, len(full) - 1), row)
        return tuple(results)

    def score_tokens(self, tokens: list[int], top_k: int = 0, next_top_k: int = 0):
        """Every position's logprob of ``tokens`` as given (``TokenScores`` as plain tuples for the pipe):
        (rows, next) where rows[0] is the first token with a NaN logprob and next is the top
        ``next_top_k`` after the last token.

        The prompt is evaluated whole, every time, as llama.cpp's own ``logits_all`` does: reusing a cached
        prefix (its KV cells, or its rows from an earlier request) changes the numbers. On Gemma 3 270M, with
        the CPU's repacked Q4_K kernels, a choice's loglikelihood moved by up to 0.47 nats against the whole
        evaluation (36 of 80 lm-eval requests over 0.01), because llama.cpp picks its matrix kernels by the
        number of rows in a batch; exact scores are what this path is for."""
        tokens = self.check_ids(list(tokens))
        if not tokens:
            raise EngineError("The prompt is empty: give at least one token id.")
        self.check_fits(len(tokens))
        first = (self.piece(tokens[0], special=True).decode("utf-8", "backslashreplace"), tokens[0], math.nan)
        rows = [first + ((None, ()) if top_k > 0 else ())]
        nxt: list = []

        def row(p: int, logits, lse: float) -> None:
            if p + 1 < len(tokens):
                tok = tokens[p + 1]
                entry = (self.piece(tok, special=True).decode("utf-8", "backslashreplace"), tok,
                         float(logits[tok]) - lse)
                if top_k > 0:
                    entry += self._rank_and_top(logits, tok, top_k, lse, special=True)
                rows.append(entry)
            elif next_top_k > 0:
                nxt.extend(self._top(logits, next_top_k, lse))

        self._evaluate(tokens, range(0, len(tokens)), row)  # logits from position 0: nothing is reused
        return tuple(rows), tuple(nxt)

    def _evaluate(self, full: list[int], wanted: range, on_logits) -> None:
        """Evaluate ``full`` after the longest cached prefix, with logits at the positions in ``wanted``
        (a contiguous range): ``on_logits(p, logits, log_sum_exp)`` for each, in order."""
        if not wanted:
            return
        common = self._reuse_prefix(full, wanted.start)
        batch = L.llama_batch_init(self.n_batch, 0, 1)
        try:
            pos = common
            todo = full[common:]
            while todo:
                if self.cancelled():
                    raise Cancelled()
                chunk, todo = todo[:self.n_batch], todo[self.n_batch:]
                batch.n_tokens = len(chunk)
                need_at = []
                for i, tok in enumerate(chunk):
                    p = pos + i
                    batch.token[i] = tok
                    batch.pos[i] = p
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    need = p in wanted
                    batch.logits[i] = need
                    if need:
                        need_at.append((i, p))
                rc = L.llama_decode(self.ctx, batch)
                if rc != 0:
                    self._after_failed_decode()
                    raise Cancelled() if rc == 2 else EngineError(f"llama.cpp failed to score (code {rc}).")
                self.tokens.extend(chunk)
                for batch_i, p in need_at:
                    logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, batch_i), shape=(self.n_vocab,))
                    on_logits(p, logits, self._log_sum_exp(logits))
                pos += len(chunk)
        finally:
            L.llama_batch_free(batch)

    def _log_sum_exp(self, logits) -> float:
        """log(sum(exp(logits))) in one scratch buffer: no n_vocab-sized temporaries per position."""
        top = float(logits.max())
        buf = self._lse_buf
        if buf is None or buf.shape != logits.shape:
            buf = self._lse_buf = np.empty_like(logits)
        np.subtract(logits, top, out=buf)
        np.exp(buf, out=buf)
        return top + math.log(float(buf.sum()))

    def _top(self, logits, k: int, lse: float, special: bool = True) -> tuple:
        """The ``k`` highest logits as (text, id, logprob), best first, ties to the lower id."""
        if k == 1:  # argmax keeps the first maximum: the lower id, as greedy decoding does
            i = int(np.argmax(logits))
            return ((self.piece(i, special).decode("utf-8", "backslashreplace"), i, float(logits[i]) - lse),)
        return self._rank_and_top(logits, 0, k, lse, special)[1]

    def _rank_and_top(self, logits, token: int, k: int, lse: float, special: bool = False) -> tuple[int, tuple]:
        """The rank of ``token`` among the whole vocabulary (1 = the highest logit) and the top ``k``.

        Ties are broken by token id, lower first: the order llama.cpp's greedy sampler uses (it keeps the
        first maximum), so a greedy token has rank 1 and ``top[i]`` always has rank ``i + 1``."""
        value = logits[token]
        rank = 1 + int(np.count_nonzero(logits > value)) + int(np.count_nonzero(logits[:token] == value))
        if k == 1:
            return rank, self._top(logits, 1, lse, special)
        k = min(k, self.n_vocab)
        part = np.argpartition(logits, -k)[-k:]
        kth = logits[part].min()
        above = part[logits[part] > kth]  # everything above the k-th value is inside the partition
        ties = np.flatnonzero(logits == kth)[:k - len(above)]
        chosen = np.concatenate([above, ties])
        chosen = chosen[np.lexsort((chosen, -logits[chosen]))]
        top = tuple((self.piece(int(i), special).decode("utf-8", "backslashreplace"), int(i), float(logits[i]) - lse)
                    for i in chosen)
        return rank, top
