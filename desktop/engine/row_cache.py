"""Scores of recently scored prompts, position by position, so a prompt that shares a prefix with one scored
before needs logits only where it differs.

A multiple-choice question reaches the server as one request per choice, each the same context followed by
a different answer, and an echo request wants every position's logprob. Position j's score depends only on
tokens 0..j, so the context's rows computed for the first choice serve the others: only the answer's
positions need the output layer and a log-softmax over the vocabulary (Gemma's 262k entries cost more
than the rest of the model per position). lm-eval sends its requests longest first, so the choices of one
question are seldom adjacent: the cache keeps many prompts, not just the last one. The KV cache is another
matter (``RunnerCore._reuse_prefix``): a prefix it no longer holds is evaluated again, without logits.
"""

from __future__ import annotations

from collections import OrderedDict

from desktop.engine.native import np


class RowCache:
    """Rows of ``Scoring.score_tokens`` (plain tuples, as sent over the pipe) for recent prompts, least
    recently used dropped first once ``max_positions`` rows are held."""

    def __init__(self, max_positions: int = 200_000, max_entries: int = 512):
        self.max_positions = max_positions
        self.max_entries = max_entries
        self._entries: OrderedDict[int, tuple[np.ndarray, int, list]] = OrderedDict()
        self._held = 0
        self._next_key = 0

    def lookup(self, tokens: np.ndarray, top_k: int) -> tuple[int, list]:
        """The longest run of leading positions whose rows are known for ``tokens`` at ``top_k`` or more
        alternatives, and those rows (cut to ``top_k``)."""
        best, best_key = 0, None
        for key, (ids, k, _rows) in self._entries.items():
            if k < top_k:
                continue
            n = min(len(ids), len(tokens))
            if n <= best:
                continue
            differ = np.flatnonzero(ids[:n] != tokens[:n])
            m = int(differ[0]) if len(differ) else n
            if m > best:
                best, best_key = m, key
        if best_key is None:
            return 0, []
        self._entries.move_to_end(best_key)
        rows = self._entries[best_key][2][:best]
        return best, [_cut(r, top_k) for r in rows]

    def put(self, tokens: np.ndarray, top_k: int, rows: list) -> None:
        if len(rows) > self.max_positions:
            return
        self._entries[self._next_key] = (tokens, top_k, rows)
        self._next_key += 1
        self._held += len(rows)
        while self._held > self.max_positions or len(self._entries) > self.max_entries:
            _key, (_ids, _k, old) = self._entries.popitem(last=False)
            self._held -= len(old)

    def clear(self) -> None:
        self._entries.clear()
        self._held = 0


def _cut(row: tuple, top_k: int) -> tuple:
    """A row computed with more alternatives, as a request for ``top_k`` would have it."""
    if top_k <= 0:
        return row[:3]
    return row[:4] + (row[4][:top_k],)
