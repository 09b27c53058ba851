"""How a finished generation is described to a person: one line of stats, one line per error."""

from __future__ import annotations

from desktop.core.errors import TandemError
from desktop.engine.types import FinalEvent


def describe_final(final: FinalEvent) -> str:
    """'finished · 128 tokens · 42.0 tok/s · first token 0.12 s · seed 1234'."""
    s = final.stats
    parts = [final.finish_words]
    if s.completion_tokens:
        parts.append(f"{s.completion_tokens:,} token{'s' if s.completion_tokens != 1 else ''}")
    if s.decode_tps:
        parts.append(f"{s.decode_tps:.1f} tok/s")
    if s.ttft_s:
        parts.append(f"first token {s.ttft_s:.2f} s")
    if s.prompt_tokens:
        reused = s.prompt_tokens - s.prompt_eval_tokens
        parts.append(f"prompt {s.prompt_tokens:,} tokens" + (f" ({reused:,} reused)" if reused > 0 else ""))
    if s.seed is not None:
        parts.append(f"seed {s.seed}")
    return " · ".join(parts)


def error_text(exc: BaseException) -> str:
    """The one line a person sees. Our own errors carry a complete sentence; anything else is a bug,
    logged with its traceback."""
    if isinstance(exc, TandemError):
        return str(exc)
    if isinstance(exc, ValueError):  # invalid sampling values
        return str(exc)
    from desktop.core.logs import setup_logging

    setup_logging().error("unexpected error in a generation", exc_info=exc)
    return f"Something went wrong ({type(exc).__name__}: {exc}). Details are in the log."
