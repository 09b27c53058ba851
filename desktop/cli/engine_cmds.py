"""`tandem complete`, `tandem chat`, `tandem score`, `tandem doctor`: loops over the engine's stream."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from desktop.cli.endpoint_cmds import add_endpoint_flag
from desktop.core.errors import TandemError


class UsageError(TandemError):
    """A flag value no sampler accepts (exit 2, like argparse)."""

    exit_code = 2


def whole_number(minimum: int = 0) -> Callable[[str], int]:
    """The argparse type of every count flag: a whole number of at least ``minimum``, or a one-line usage
    error. 0 is the minimum where it means something (no top-k, no logprobs, the default threads or context);
    1 where it doesn't (repetitions)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its "invalid ... value" fallback
    return parse


count = whole_number(0)
positive_int = count  # its old name, which said "positive" of a rule that takes 0: still imported by serve_cmd


def gpu_layers(text: str):
    if text == "auto":
        return "auto"
    try:
        return count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of layers, got {text!r}") from None


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """``--model`` and ``--endpoint``: a local GGUF file, or a model on a server (``load_from_args`` opens it)."""
    p.add_argument("--model", default=None, metavar="PATH", help="a GGUF file, or with --endpoint the server's model id")
    add_endpoint_flag(p)


def add_load_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=count, default=None, help="CPU threads (default: physical cores)")
    p.add_argument("--ctx", type=count, default=None, help="context size in tokens (default: min(trained, 4096))")
    p.add_argument("--gpu-layers", type=gpu_layers, default="auto", help="layers to offload: auto or a number")


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-tokens", type=count, default=256)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=count, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=count, default=None, help="pin the seed to reproduce a sample exactly")
    p.add_argument("--stop", action="append", default=[], metavar="STR", help="stop when this text appears (repeatable)")
    p.add_argument("--grammar", default=None, metavar="GBNF", help="GBNF grammar text, or @FILE")
    p.add_argument("--json-schema", default=None, metavar="SCHEMA", help="JSON schema text, or @FILE")
    p.add_argument("--logprobs", type=count, default=0, metavar="K", help="top-K alternatives per token")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming")
    add_load_flags(p)


def _text_or_file(value: str | None, what: str) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"can't read the {what} file {value[1:]}: {exc.strerror or exc}") from None


def sampling_from_args(args: argparse.Namespace):
    from desktop.engine.types import SamplingParams

    params = SamplingParams(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        repeat_penalty=args.repeat_penalty, max_tokens=args.max_tokens, stop=tuple(args.stop),
        seed=args.seed, grammar=_text_or_file(args.grammar, "grammar"),
        json_schema=_text_or_file(args.json_schema, "JSON schema"), logprobs=args.logprobs,
    )
    try:
        return params.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def load_from_args(args: argparse.Namespace, path: str | None, endpoint: str | None = None):
    """A local model from PATH, or with --endpoint the server's model id PATH (a Model either way)."""
    from desktop.engine import LoadOptions, load_model

    endpoint = endpoint or getattr(args, "endpoint", None)
    if endpoint:
        from desktop.cli.endpoint_cmds import open_remote

        return open_remote(endpoint, path)
    if not path:
        raise UsageError("--model PATH is needed (or --endpoint NAME|URL for a model on a server)")
    return load_model(path, LoadOptions(n_ctx=args.ctx, gpu_layers=args.gpu_layers, threads=args.threads))


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 6)


def result_json(final, tokens: list | None) -> dict:
    """The `complete --json` shape, shared with `chat --json` and `compare --json`."""
    out = {"text": final.text, "finish_reason": final.finish_reason, "stats": final.stats.as_json()}
    if final.error is not None:
        out["error"] = str(final.error)
    if tokens is not None:
        out["tokens"] = [
            {"text": t.text, "logprob": _num(t.logprob),
             "top": [{"text": a.text, "logprob": _num(a.logprob)} for a in t.top]}
            for t in tokens
        ]
    return out


def run_stream(stream, *, as_json: bool, want_tokens: bool) -> tuple[object, list]:
    """Drive a stream: text to stdout as it comes (unless --json). Ctrl-C cancels cleanly."""
    from desktop.engine.types import FinalEvent

    tokens: list = []
    final = None
    try:
        for event in stream:
            if isinstance(event, FinalEvent):
                final = event
                break
            if want_tokens:
                tokens.append(event)
            if not as_json and event.text:
                sys.stdout.write(event.text)
                sys.stdout.flush()
    except KeyboardInterrupt:
        stream.cancel()
        final = stream.next_event()
        while not isinstance(final, FinalEvent):
            final = stream.next_event()
    if not as_json and final is not None and final.text and not final.text.endswith("\n"):
        sys.stdout.write("\n")
    return final, tokens


def finish(final, tokens: list, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(result_json(final, tokens if args.logprobs else None), ensure_ascii=False))
    if final.error is not None:
        raise final.error
    return 130 if final.finish_reason == "cancelled" else 0


def cmd_complete(args: argparse.Namespace) -> int:
    params = sampling_from_args(args)
    with load_from_args(args, args.model) as model:
        final, tokens = run_stream(model.complete(args.prompt, params), as_json=args.json,
                                   want_tokens=bool(args.logprobs))
    return finish(final, tokens, args)


def cmd_chat(args: argparse.Namespace) -> int:
    params = sampling_from_args(args)
    messages = [{"role": "user", "content": args.message}]
    with load_from_args(args, args.model) as model:
        if args.show_prompt:
            sys.stdout.write(model.render_chat(messages, system=args.system))
            sys.stdout.flush()
            return 0
        final, tokens = run_stream(model.chat(messages, params, system=args.system), as_json=args.json,
                                   want_tokens=bool(args.logprobs))
    return finish(final, tokens, args)


def cmd_score(args: argparse.Namespace) -> int:
    with load_from_args(args, args.model) as model:
        result = model.score(args.prompt, args.continuation, as_chat=args.chat, system=args.system,
                             top_k=args.top_k)

    def ranked(t) -> dict:  # with --top-k: the rank over the whole vocabulary and the alternatives
        return {"rank": t.rank, "top": [{"text": a.text, "token_id": a.token_id, "logprob": _num(a.logprob)}
                                        for a in t.top]} if args.top_k else {}

    if args.json:
        print(json.dumps({
            "mean_logprob": _num(result.mean_logprob), "total_logprob": _num(result.total_logprob),
            "tokens": [{"text": t.text, "token_id": t.token_id, "logprob": _num(t.logprob), **ranked(t)}
                       for t in result.tokens],
        }, ensure_ascii=False))
    else:
        for t in result.tokens:
            rank = f"  rank {t.rank:<6}" if t.rank is not None else ""
            print(f"{t.logprob:9.4f}{rank}  {t.text!r}")
        print(f"mean logprob {result.mean_logprob:.4f} over {len(result.tokens)} tokens")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from desktop.engine import hardware_report

    report = hardware_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"llama-cpp-python   {report['llama_cpp_python']}")
    print(f"backend            {report['build_backend']}")
    print(f"GPU offload        {'supported' if report['gpu_offload_supported'] else 'not supported by this build'}")
    print(f"CPU                {report['cpu_count']} logical cores; default threads {report['default_threads']}")
    print(f"CPU features       {', '.join(report['cpu_features']) or 'none reported'}")
    for gpu in report["gpus"]:
        print(f"GPU                {gpu['name']}: {gpu['description']} "
              f"({gpu['memory_total'] / 2**30:.1f} GiB, {gpu['memory_free'] / 2**30:.1f} GiB free)")
    if not report["gpus"]:
        print("GPU                none usable by this build (reinstall with CMAKE_ARGS to enable CUDA/Metal/Vulkan)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("complete", help="continue a text with a model (raw completion)")
    add_model_flags(p)
    add_sampling_flags(p)
    p.add_argument("prompt", metavar="PROMPT")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("chat", help="ask an instruct model, through its chat template")
    add_model_flags(p)
    p.add_argument("--system", default=None, metavar="S", help="system prompt")
    p.add_argument("--show-prompt", action="store_true", help="print the templated prompt and exit")
    add_sampling_flags(p)
    p.add_argument("message", metavar="MESSAGE")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("score", help="log-probabilities of a given continuation (no sampling)")
    add_model_flags(p)
    p.add_argument("--prompt", required=True, metavar="TEXT")
    p.add_argument("--continuation", required=True, metavar="TEXT")
    p.add_argument("--chat", action="store_true", help="treat the prompt as a user message (chat template)")
    p.add_argument("--system", default=None, metavar="S")
    p.add_argument("--top-k", type=count, default=0, metavar="K",
                   help="also each token's rank over the whole vocabulary and the top-K alternatives")
    p.add_argument("--json", action="store_true")
    add_load_flags(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("doctor", help="hardware and llama.cpp backend report")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
