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


_MEMORY_HEADROOM = 256 << 20  # bytes a template may allocate beyond what the process already uses
_MAX_POWER_BITS = 1 << 16  # a ** b whose result would need more bits than this is refused


@contextmanager
def _memory_limit():
    """Linux: cap the process's data segment for the duration of the render. SIGALRM can't interrupt a
    single C call, and ``'x' * 10**9`` or ``'x'|center(10**9)`` is one: without this, a template took
    10 s and 2 GB (10**10 would take the machine). A failed allocation is a MemoryError, caught below.
    Only private writable memory counts, so the model's mmapped weights don't."""
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as fh:
            vm_data = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmData:"))
        previous = resource.getrlimit(resource.RLIMIT_DATA)
        cap = vm_data + _MEMORY_HEADROOM
        if previous[0] != resource.RLIM_INFINITY and previous[0] < cap:
            cap = previous[0]
        resource.setrlimit(resource.RLIMIT_DATA, (cap, previous[1]))
    except (ImportError, OSError, ValueError, StopIteration):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, previous)


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
        with _memory_limit():  # only where the alarm is usable too: the worker's main thread
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _environment():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        """Refuses the one-operator bombs before Python starts on them (uninterruptible C calls):
        repeating a string or list past the output limit, and powers with enormous results."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT_CHARS:
                        raise ChatTemplateError(f"The model's chat template tried to build a value of more than "
                                                f"{MAX_OUTPUT_CHARS:,} items; stopped.")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
                if abs(left).bit_length() * right > _MAX_POWER_BITS:
                    raise ChatTemplateError("The model's chat template tried to compute an enormous number; stopped.")
            return super().call_binop(context, operator, left, right)

    def raise_exception(message: str):
        raise ChatTemplateError(f"The model's chat template refused the conversation: {message}")

    def strftime_now(fmt: str) -> str:
        return datetime.datetime.now().strftime(fmt)

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
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
