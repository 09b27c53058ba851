"""The inference engine: every model runs in its own worker process; only the worker imports llama_cpp.

API (all blocking calls are meant for a background thread; none touches Qt):

    model = load_model(path, LoadOptions(...))      # -> ModelHandle (a ``Model``, desktop/engine/model.py);
                                                    #    raises ModelFileError, EngineCrashed
    model.info                                      # LoadInfo (n_ctx, backend, kind, chat_template, ...)
    stream = model.complete(prompt, SamplingParams(...), threads=None)   # threads: narrow this request
    stream = model.chat(messages, SamplingParams(...), system=None)   # messages: [{"role","content"}]
    for event in stream:                            # TokenEvent ... then one FinalEvent
        ...
    stream.cancel()                                 # thread-safe; decode stops within 200 ms, prefill too
    stream.final                                    # the FinalEvent once the stream has ended
    # a request made while another runs on the model waits for it (stream.waiting); replace_running=True
    # cancels the running one instead. render/tokenize/score wait too (EngineBusy: it is this thread's stream)
    model.render_chat(messages, system=None)        # the exact templated prompt text, no generation
    model.count_tokens(text, special=False)
    model.score(prompt, continuation, as_chat=False)  # ScoreResult: logprobs of given tokens, no sampling
    model.close()                                   # ends the worker: memory really comes back

    hardware_report()                               # dict: CPU features, GPU devices, backend, offload
    split_threads(models)                           # threads per model when several decode at once

The ui uses ``desktop.engine.backends`` (open_model, split_threads, hardware) and the interface in
``desktop.engine.model``, never this package's ``client``; the pipe's messages are in ``messages.py``.
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
    if name == "split_threads":
        from desktop.engine import backends

        return backends.split_threads
    if name in ("load_model", "ModelHandle", "Stream", "hardware_report"):
        from desktop.engine import client

        return getattr(client, name)
    raise AttributeError(name)
