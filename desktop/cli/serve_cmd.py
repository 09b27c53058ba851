"""`tandem serve`: the local models behind an OpenAI-compatible API (desktop.serve), until Ctrl+C."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from desktop.cli.engine_cmds import UsageError, add_load_flags, positive_int


def model_ids(specs: list[str]) -> list[tuple[str, str]]:
    """(served id, path) per --model: a library name keeps its name, a file its stem; never a path."""
    from desktop.cli.lens_cmds import model_path

    out: list[tuple[str, str]] = []
    for spec in specs:
        path = model_path(spec)
        name = spec if path != str(Path(spec).expanduser()) else Path(path).stem
        if any(name == known for known, _ in out):
            raise UsageError(f"two models would both be served as {name!r}; serve each file once")
        out.append((name, path))
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    from desktop.engine import LoadOptions, load_model
    from desktop.serve import ServerConfig, ServerHandle
    from desktop.serve.config import check_config

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise UsageError(f"the environment variable {args.api_key_env} is empty or not set")
    if args.parallel < 1:
        raise UsageError("--parallel must be 1 or more")
    config = ServerConfig(host=args.host, port=args.port, api_key=api_key, cors_origins=tuple(args.cors))
    from desktop.serve import ServeError

    try:
        check_config(config)  # before minutes of loading
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    specs = model_ids(args.model)
    options = LoadOptions(n_ctx=args.ctx, gpu_layers=args.gpu_layers, threads=args.threads,
                          n_seq=args.parallel)
    models = {}
    try:
        for model_id, path in specs:
            models[model_id] = load_model(path, options)
        handle = ServerHandle(models, config)
        handle.start()
        try:
            for model_id in models:
                print(f"{model_id}  {handle.model_url(model_id)}   "
                      f"(lm-eval base_url: {handle.model_url(model_id)}/completions)")
            print(f"serving on {handle.url} (Ctrl+C stops)", flush=True)
            _stop_on_sigterm()
            while handle.running:
                time.sleep(0.2)
            return 1  # the server thread ended on its own
        except KeyboardInterrupt:
            sys.stderr.write("tandem: stopping the server\n")
            return 130
        finally:
            handle.stop()
    finally:
        for model in models.values():
            try:
                model.close()
            except KeyboardInterrupt:  # a second Ctrl+C while closing: the workers die with us
                pass


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, `docker stop`, `kill`) stops the server as Ctrl+C does: streams get their
    final error chunk and the workers exit, instead of dying mid-write."""
    import signal

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve models on an OpenAI-compatible local API (lm-eval, openai SDK)")
    p.add_argument("--model", action="append", required=True, metavar="NAME|PATH",
                   help="a library name or a GGUF file (repeat to serve several)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                   "needs --api-key-env)")
    p.add_argument("--port", type=positive_int, default=8080)
    p.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="the environment variable holding the API key clients must send")
    p.add_argument("--parallel", type=positive_int, default=1, metavar="N",
                   help="requests decoded together per model (slots)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow browser requests from this origin (repeatable; none by default)")
    add_load_flags(p)
    p.set_defaults(func=cmd_serve)
