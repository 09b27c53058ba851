"""`tandem compare`: one prompt through a base model (as raw text) and its instruct sibling (as a user
message through its chat template), both at once, so the difference is there to read."""

from __future__ import annotations

import argparse
import json
import sys
import threading

from desktop.cli.endpoint_cmds import add_endpoint_flag
from desktop.cli.engine_cmds import add_sampling_flags, load_from_args, result_json, sampling_from_args
from desktop.compare.pair import PairRequest, run_pair


def _load_both(args):
    """Load the two models in parallel: the slower load sets the wait, not the sum."""
    out: dict = {}
    errors: list = []

    def load(name: str, path: str) -> None:
        try:
            out[name] = load_from_args(args, path, endpoint=getattr(args, f"{name}_endpoint", None))
        except Exception as exc:  # re-raised below in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(n, p)) for n, p in (("base", args.base), ("instruct", args.instruct))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for handle in out.values():
            handle.close()
        raise errors[0]
    return out["base"], out["instruct"]


def cmd_compare(args: argparse.Namespace) -> int:
    params = sampling_from_args(args)
    base, instruct = _load_both(args)
    try:
        results = run_pair(base, instruct, PairRequest.make(args.prompt, params, system=args.system))
    finally:
        base.close()
        instruct.close()
    if args.json:
        print(json.dumps({name: result_json(final, tokens if args.logprobs else None)
                          for name, (final, tokens) in results.items()}, ensure_ascii=False))
    else:
        for name, path in (("base", args.base or args.base_endpoint), ("instruct", args.instruct or args.instruct_endpoint)):
            final, _ = results[name]
            s = final.stats
            how = "continues the text" if name == "base" else "answers the message (chat template)"
            print(f"=== {name}: {path} — {how}")
            print(final.text if final.error is None else f"[error] {final.error}")
            print(f"--- {final.finish_reason}; {s.completion_tokens} tokens; TTFT {s.ttft_s * 1000:.0f} ms; "
                  f"{s.decode_tps:.1f} tok/s\n")
    errors = [final.error for final, _ in results.values() if final.error is not None]
    if errors:
        sys.stderr.write("".join(f"tandem: error: {e}\n" for e in errors))
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser("compare", help="one prompt through a base model and its instruct sibling, side by side")
    p.add_argument("--base", default=None, metavar="PATH",
                   help="the base model (gets the raw prompt); with --base-endpoint, the server's model id")
    p.add_argument("--instruct", default=None, metavar="PATH",
                   help="the instruct model (gets it as a chat message); with --instruct-endpoint, the server's model id")
    p.add_argument("--system", default=None, metavar="S", help="system prompt for the instruct model")
    add_endpoint_flag(p, "--base-endpoint", "the base model")
    add_endpoint_flag(p, "--instruct-endpoint", "the instruct model")
    add_sampling_flags(p)
    p.add_argument("prompt", metavar="PROMPT")
    p.set_defaults(func=cmd_compare)
