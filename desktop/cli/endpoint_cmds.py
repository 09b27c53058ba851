"""`tandem endpoints add|list|test|remove`, and opening a model on an endpoint for `--endpoint NAME|URL`.

An endpoint is a remote inference server (vLLM, SGLang, llama-server, Ollama, OpenAI-compatible). Its name
and URL live in settings; its API key in the OS keyring (or, without one, an environment variable named by
``--api-key-env``). ``test`` connects, lists the models and says what each can do, after checking the
server's logprobs against a known answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from desktop.core.errors import EndpointError


def add_endpoint_flag(p: argparse.ArgumentParser, flag: str = "--endpoint", role: str = "") -> None:
    p.add_argument(flag, default=None, metavar="NAME|URL",
                   help=f"run {role or 'the model'} on a remote inference server (a saved endpoint or its URL); "
                        "--model is then the server's model id")


def open_remote(endpoint: str, model: str | None):
    """Connect to ``model`` (or the server's only model) on a saved endpoint or a URL."""
    from desktop.engine.remote import open_endpoint

    return open_endpoint(endpoint, model)


def _store():
    from desktop.core.endpoints import EndpointStore

    return EndpointStore()


def cmd_add(args: argparse.Namespace) -> int:
    from desktop.core.endpoints import keyring_status

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "").strip()
        if not key:
            raise EndpointError(f"${args.api_key_env} is not set; export the API key in it first.")
    ok, note = keyring_status()
    ep = _store().add(args.name, args.url, api_key=key, api_key_env=args.api_key_env)
    if args.json:
        print(json.dumps(ep.as_json(has_key=bool(key))))
        return 0
    where = ("" if not key else f"; its API key is read from ${ep.api_key_env} when used ({note})" if ep.api_key_env
             else "; its API key is in the OS keyring")
    print(f"added endpoint {ep.name}: {ep.url}{where}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store()
    endpoints = store.list()
    if args.json:
        print(json.dumps([ep.as_json(has_key=store.has_key(ep)) for ep in endpoints]))
        return 0
    if not endpoints:
        print("no endpoints yet; add one with: tandem endpoints add NAME URL [--api-key-env VAR]")
    for ep in endpoints:
        key = f"key from ${ep.api_key_env}" if ep.api_key_env else ("key in keyring" if store.has_key(ep) else "no key")
        print(f"{ep.name:20} {ep.url}  ({key})")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    _store().remove(args.name)
    if not args.json:
        print(f"removed endpoint {args.name}")
    else:
        print(json.dumps({"removed": args.name}))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from desktop.engine.remote import describe

    url, key, label = _store().resolve(args.name)
    report = describe(url, api_key=key)
    report["name"] = label
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"{label}: {report['engine_label']} {report['version']} at {report['url']}".replace("  ", " "))
    for m in report["models"]:
        c = m["capabilities"]
        print(f"  {m['id']}  ({m['kind']}, context {m['n_ctx'] or 'unknown'})")
        print(f"    generation with top-{c['top_logprobs']} logprobs: yes")
        print(f"    scoring given text: {'yes (checked)' if c['scoring'] else 'no — ' + c['scoring_note']}")
        print(f"    exact chat prompt: {'yes' if c['server_template'] else 'no — ' + c['template_note']}")
        print(f"    tokenizer: {'yes' if c['tokenizer'] else 'no'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("endpoints", help="remote inference servers (vLLM, SGLang, llama-server, Ollama)")
    esub = p.add_subparsers(dest="endpoints_command", metavar="ACTION", parser_class=type(p))
    a = esub.add_parser("add", help="save a server under a name")
    a.add_argument("name", metavar="NAME")
    a.add_argument("url", metavar="URL", help="the server's base URL, e.g. http://gpu-box:8000")
    a.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="read the API key from this environment variable (stored in the OS keyring when there "
                        "is one; otherwise the variable is read each time)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_add)
    for name, func, what in (("list", cmd_list, "the saved endpoints"),
                             ("test", cmd_test, "connect; list the models and what they can do"),
                             ("remove", cmd_remove, "forget an endpoint and its key")):
        q = esub.add_parser(name, help=what)
        if name != "list":
            q.add_argument("name", metavar="NAME" if name == "remove" else "NAME|URL")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])
