"""Which pieces of a text are a model's special tokens (``<|im_start|>``, ``<start_of_image>``, ``</s>`` …).

A chat template wraps turns in them, and a model sometimes *writes* one (Gemma 3's base model puts
``<start_of_image>`` in the middle of a sentence). They are markers, not words: the views show them styled
(the exact-inputs view, every pane's output) and the exports mark them, so a reader never takes one for
text. Shapes common to chat templates and multimodal markers are known here; a model's own marker texts
(its BOS/EOS) are added per model. Qt-free: the ui and ``core.export`` share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Marker shapes used by common chat templates and vocabularies; a model's own BOS/EOS texts are added per model.
GENERIC = (
    r"<\|[^<>|\s]{1,40}\|>",  # <|im_start|>, <|eot_id|>, <|start_header_id|> …
    r"</?s>", r"\[/?INST\]", r"<</?SYS>>", r"\[/?(?:AVAILABLE_TOOLS|TOOL_CALLS|SYSTEM_PROMPT)\]",
    r"<(?:start|end)_of_[a-z]{1,20}>",  # Gemma: <start_of_turn>, <end_of_turn>, <start_of_image> …
    r"<bos>", r"<eos>", r"<pad>", r"<unused\d{1,5}>", r"\[multimodal\]",
    r"<\uff5c[^<>]{1,40}\uff5c>",  # DeepSeek's full-width bars
)


def special_token_pattern(extra: Iterable[str] = ()) -> re.Pattern[str]:
    """One regex for the generic markers plus a model's own special token texts (longest first)."""
    extras = sorted({t for t in extra if t and t.strip()}, key=len, reverse=True)
    return re.compile("|".join([re.escape(t) for t in extras] + list(GENERIC)))


DEFAULT_PATTERN = special_token_pattern()


def special_spans(text: str, pattern: re.Pattern[str] = DEFAULT_PATTERN) -> list[tuple[int, int, str]]:
    """(start, end, token text) of each special token in ``text``, in code points."""
    return [(m.start(), m.end(), m.group()) for m in pattern.finditer(text)]


def is_special(token_text: str, pattern: re.Pattern[str] = DEFAULT_PATTERN) -> bool:
    """Whether one generated token's text is a special token as a whole (a token that only *contains* one,
    or a marker spelled out of several ordinary tokens, is text)."""
    return bool(token_text) and pattern.fullmatch(token_text) is not None


def mark_in_markdown(text: str, pattern: re.Pattern[str] = DEFAULT_PATTERN) -> str:
    """``text`` with each special token outside fenced code put in a code span: Markdown would otherwise
    read ``<start_of_image>`` as an HTML tag and drop it, and the code span marks it as a token."""
    out, fence = [], ""
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence and stripped.startswith(fence):
            fence = ""
        elif not fence and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif not fence:
            line = pattern.sub(lambda m: f"`{m.group()}`", line)
        out.append(line)
    return "\n".join(out)


def summary_line(text: str, pattern: re.Pattern[str] = DEFAULT_PATTERN) -> str:
    """One Markdown line naming the special tokens in a text shown verbatim (in a fence), or ""."""
    counts: dict[str, int] = {}
    for _, _, token in special_spans(text, pattern):
        counts[token] = counts.get(token, 0) + 1
    if not counts:
        return ""
    listed = ", ".join(f"`{t}`" + (f" ×{n}" if n > 1 else "") for t, n in counts.items())
    return f"_Special tokens in this text (model markers, not words): {listed}._"
