"""Render a model's own GGUF chat template, safely.

A chat template is code shipped inside a downloaded file, so it runs in Jinja's immutable sandbox (no
attribute walks to ``os``, no file access, no mutation of our objects), with a cap on the output size and,
where the platform allows, on the time it may take. Callers in the engine's worker process pass
``use_alarm=True``: a template stuck in a loop is then interrupted by SIGALRM instead of hanging a model.
"""

from __future__ import annotations

import datetime
import signal
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager

from desktop.core.errors import ChatTemplateError

MAX_OUTPUT_CHARS = 4_000_000
MAX_SECONDS = 2.0

BASE_MODEL_MESSAGE = (
    "This is a base model: it has no chat template, so it can't hold a chat. Use the Completion pane "
    "(or `tandem complete`) to let it continue text, or pick its instruct sibling for chat."
)


class _Timeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float, use_alarm: bool):
    usable = (use_alarm and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _environment():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise ChatTemplateError(f"The model's chat template refused the conversation: {message}")

    def strftime_now(fmt: str) -> str:
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    # HF templates call tojson with ensure_ascii=False semantics; keep non-ASCII text readable.
    import json

    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    return env


def build_messages(messages: Iterable[Mapping[str, str]], system: str | None = None) -> list[dict[str, str]]:
    """Validate and normalise a conversation: roles system/user/assistant, text content."""
    out: list[dict[str, str]] = []
    if system:
        out.append({"role": "system", "content": str(system)})
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ChatTemplateError(
                f"Message {i + 1} is not a chat message (needs a role system/user/assistant and text).")
        out.append({"role": role, "content": content})
    if not any(m["role"] != "system" for m in out):
        raise ChatTemplateError("The conversation has no message to answer yet.")
    return out


def render_chat(
    template: str | None,
    messages: Iterable[Mapping[str, str]],
    *,
    system: str | None = None,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    use_alarm: bool = False,
    max_chars: int = MAX_OUTPUT_CHARS,
    max_seconds: float = MAX_SECONDS,
) -> str:
    """The exact text the model sees. Raises ChatTemplateError, never anything else."""
    if not template:
        raise ChatTemplateError(BASE_MODEL_MESSAGE)
    conversation = build_messages(messages, system)
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    try:
        with _time_limit(max_seconds, use_alarm):
            compiled = _environment().from_string(template)
            pieces: list[str] = []
            size = 0
            for chunk in compiled.generate(
                messages=conversation, bos_token=bos_token, eos_token=eos_token,
                add_generation_prompt=add_generation_prompt, tools=None, documents=None,
            ):
                size += len(chunk)
                if size > max_chars:
                    raise ChatTemplateError(
                        f"The model's chat template produced more than {max_chars:,} characters; stopped.")
                pieces.append(chunk)
    except ChatTemplateError:
        raise
    except _Timeout:
        raise ChatTemplateError(
            f"The model's chat template took longer than {max_seconds:g} s to render; stopped.") from None
    except SecurityError as exc:
        raise ChatTemplateError(f"The model's chat template tried something unsafe and was stopped ({exc}).") from None
    except TemplateError as exc:
        raise ChatTemplateError(f"The model's chat template failed: {exc}") from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise ChatTemplateError(f"The model's chat template failed: {type(exc).__name__}") from None
    except Exception as exc:  # a template can raise nearly anything from inside the sandbox
        raise ChatTemplateError(f"The model's chat template failed: {type(exc).__name__}: {exc}") from None
    return "".join(pieces)
