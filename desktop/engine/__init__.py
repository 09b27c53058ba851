"""The inference engine: every model runs in its own worker process; only the worker imports llama_cpp.

API (all blocking calls are meant for a background thread; none touches Qt):

    model = load_model(path, LoadOptions(...))      # -> ModelHandle; raises ModelFileError, EngineCrashed
    model.info                                      # LoadInfo (n_ctx, backend, kind, chat_template, ...)
    stream = model.complete(prompt, SamplingParams(...), threads=None)   # threads: narrow this request
    stream = model.chat(messages, SamplingParams(...), system=None)   # messages: [{"role","content"}]
    for event in stream:                            # TokenEvent ... then one FinalEvent
        ...
    stream.cancel()                                 # thread-safe; decode stops within 200 ms, prefill too
    stream.final                                    # the FinalEvent once the stream has ended
    model.render_chat(messages, system=None)        # the exact templated prompt text, no generation
    model.count_tokens(text, special=False)
    model.score(prompt, continuation, chat=False)   # ScoreResult: logprobs of given tokens, no sampling
    model.close()                                   # ends the worker: memory really comes back

    hardware_report()                               # dict: CPU features, GPU devices, backend, offload
"""

from __future__ import annotations

from desktop.engine.types import (
    Event,
    FinalEvent,
    GenerationStats,
    LoadInfo,
    LoadOptions,
    SamplingParams,
    ScoredToken,
    ScoreResult,
    TokenEvent,
    TopToken,
)

__all__ = [
    "Event", "FinalEvent", "GenerationStats", "LoadInfo", "LoadOptions", "SamplingParams", "ScoreResult",
    "ScoredToken", "TokenEvent", "TopToken", "load_model", "ModelHandle", "Stream", "hardware_report",
    "split_threads",
]


def __getattr__(name: str):
    if name in ("load_model", "ModelHandle", "Stream", "hardware_report", "split_threads"):
        from desktop.engine import client

        return getattr(client, name)
    raise AttributeError(name)
