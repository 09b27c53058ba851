"""Slots' throughput (issue 19: "4 clients don't take 4x as long"): K streams of M tokens at once on one
handle with K slots, against the same K requests one after another on a one-slot handle.

``slots_throughput`` returns the figures; it sets no verdict (the bench's report does, against its target).
Decode tok/s is counted from each stream's first token to its last, as the client sees them, so prefill
(short prompts here) stays out of both sides alike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.engine_figures import letters_prompt
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, TokenEvent, load_model


@dataclass(frozen=True)
class SlotsFigures:
    k: int
    m: int
    together_tps: float  # every stream's decoded tokens over the span from the first first-token to the last token
    sequential_tps: float  # the same tokens over the sum of each stream's own span, one at a time
    shares: tuple[float, ...]  # each stream's own tok/s as a share of the aggregate (together)

    @property
    def speedup(self) -> float:
        return self.together_tps / self.sequential_tps if self.sequential_tps else 0.0


def _read(stream, spans: list, i: int) -> None:
    """(first token time, last token time, decoded tokens) of one stream, as this side of the pipe sees it."""
    times = []
    for event in stream:
        if isinstance(event, TokenEvent):
            times.append(time.perf_counter())
        elif isinstance(event, FinalEvent) and event.error is not None:
            raise event.error
    spans[i] = (times[0], times[-1], len(times) - 1) if len(times) > 1 else None


def slots_throughput(model: Path, k: int = 4, m: int = 64, *, threads: int | None = None,
                     n_ctx: int = 1024, prompt_tokens: int = 32) -> SlotsFigures:
    """Aggregate decode tok/s of ``k`` concurrent streams of ``m`` tokens (one handle, ``n_seq=k``) and of
    the same ``k`` requests one at a time (``n_seq=1``). Each request has its own seed and a prompt that
    shares nothing with the others beyond BOS."""
    prompts = [letters_prompt(prompt_tokens, f"slots-{i}", first=i) for i in range(k)]
    params = [SamplingParams(max_tokens=m, seed=1000 + i) for i in range(k)]
    spans: list = [None] * k
    with load_model(model, LoadOptions(threads=threads, n_ctx=n_ctx)) as one:
        for i in range(k):
            _read(one.complete(prompts[i], params[i]), spans, i)
    sequential = [s for s in spans if s]
    sequential_tps = sum(n for _a, _b, n in sequential) / max(1e-9, sum(b - a for a, b, _n in sequential))
    spans = [None] * k
    with load_model(model, LoadOptions(threads=threads, n_ctx=n_ctx, n_seq=k)) as many:
        streams = [many.complete(prompts[i], params[i]) for i in range(k)]
        readers = [threading.Thread(target=_read, args=(streams[i], spans, i)) for i in range(k)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
    together = [s for s in spans if s]
    span = (max(b for _a, b, _n in together) - min(a for a, _b, _n in together)) if together else 0.0
    together_tps = sum(n for _a, _b, n in together) / max(1e-9, span)
    shares = tuple((n / max(1e-9, b - a)) / together_tps for a, b, n in together) if together_tps else ()
    return SlotsFigures(k, m, together_tps, sequential_tps, shares)


if __name__ == "__main__":
    import sys

    # python -m bench.parallel MODEL [K [M [THREADS]]]
    k, m, threads = ([int(a) for a in sys.argv[2:5]] + [4, 64, 0][len(sys.argv[2:5]):])
    fig = slots_throughput(Path(sys.argv[1]), k, m, threads=threads or None)
    print(f"{fig.k} streams x {fig.m} tokens: together {fig.together_tps:.1f} tok/s, one at a time "  # noqa: T201
          f"{fig.sequential_tps:.1f} tok/s (x{fig.speedup:.2f}); shares {', '.join(f'{s:.0%}' for s in fig.shares)}")
