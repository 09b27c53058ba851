"""What the Compare pane offers with one click: the prompts from the articles on base vs instruct models,
what to look for in each, and the few-shot template that shows how far prompting alone takes a base model.

Plain data (no Qt), so the CLI, the README and the tests can read the same wording as the pane.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_PLACEHOLDER = "{prompt}"


@dataclass(frozen=True, slots=True)
class Preset:
    """One prompt and the sentence that tells a person what difference to watch for."""

    key: str
    label: str
    prompt: str
    look_for: str


PRESETS: tuple[Preset, ...] = (
    Preset("worldcup", "World Cup?", "Who won the World Cup?",
           "The classic: a base model may answer vaguely (\u201cthere have been many winners\u201d) or keep "
           "writing around the question \u2014 more questions, a quiz, a forum thread. An instruct model "
           "answers directly and specifically (\u201cFrance won the 2018 FIFA World Cup\u2026\u201d)."),
    Preset("list", "List", "List three benefits of regular exercise.",
           "A directive. The instruct model gives a list in the asked format and length; the base model "
           "follows it loosely, if at all \u2014 it may continue with more instructions, as if copying a "
           "worksheet."),
    Preset("summarize", "Summarize",
           "Summarize in one sentence: The Industrial Revolution began in Britain in the late 18th century, "
           "when machines and steam power moved the making of goods from homes and small workshops into "
           "factories. It changed how people worked and lived, drew them from the countryside into growing "
           "cities, and spread to Europe and North America during the 19th century.",
           "Summarization is an instruct model's home ground: one sentence, as asked. A base model tends to "
           "go on with the passage, or repeat it, rather than condense it."),
    Preset("explain", "Explain", "Explain why the sky is blue.",
           "The instruct model explains, in a tone and length meant for a reader. The base model may explain "
           "too (such text is everywhere in its training data), but drifts: a textbook page, an exam, a "
           "thread of replies."),
    Preset("write", "Write", "Write a short poem about the sea.",
           "The instruct model writes the poem. The base model may treat the line as a title or an "
           "assignment and write about it, or list more assignments."),
    Preset("translate", "Translate", "Translate into French: Where is the train station?",
           "The instruct model gives the translation and stops. The base model may translate, add more "
           "phrases to translate, or continue a phrasebook."),
    Preset("story", "Once upon a time", "Once upon a time",
           "Plain text, no request: where the base model shines \u2014 it simply continues the story. The "
           "instruct model treats the words as a message and answers it (\u201cIt sounds like you\u2019d "
           "like a story\u2026\u201d)."),
)

GENERAL_HINT = ("The base model gets your prompt as raw text and continues it; the instruct model gets it as a "
                "user message inside its chat template and answers it. Same sampling settings and the same seed "
                "on both, so what differs is the training.")

FEW_SHOT_HINT = ("Few-shot: the base model gets your prompt wrapped in a few question/answer examples, so "
                 "answering becomes the natural continuation. Its run stops at the next \u201cQ:\u201d line. "
                 "How close does it get to the instruct model?")

ICL_HINT = ("In-context alignment: the base model gets a preamble and three example answers in "
            "\u201c# Query:\u201d / \u201c# Answer:\u201d form before your prompt (the URIAL recipe), and stops at "
            "the next \u201c# Query:\u201d. Look for a warm opening, a structured body and an offer of more, as the "
            "instruct model writes. The Alignment view measures how close it gets: the instruct answer ranked "
            "under base + preamble, and how much of the two answers match.")

DEFAULT_FEW_SHOT_TEMPLATE = (
    "Q: What is the capital of France?\n"
    "A: The capital of France is Paris.\n"
    "\n"
    "Q: List three primary colours.\n"
    "A: Red, yellow and blue.\n"
    "\n"
    "Q: Translate into Spanish: Good morning.\n"
    "A: Buenos d\u00edas.\n"
    "\n"
    f"Q: {PROMPT_PLACEHOLDER}\n"
    "A:"
)

# The base model, left alone after its answer, writes the next "Q:" itself: stop there.
FEW_SHOT_STOP = "\nQ:"


def preset(key: str) -> Preset:
    for p in PRESETS:
        if p.key == key:
            return p
    raise KeyError(key)


def preset_for_prompt(prompt: str) -> Preset | None:
    """The preset whose prompt this is (a reloaded run shows its hint again)."""
    return next((p for p in PRESETS if p.prompt == prompt.strip()), None)


def wrap_few_shot(template: str, prompt: str) -> str:
    """The base model's input in few-shot mode. Raises ValueError (one line) for a template without
    ``{prompt}``: the prompt would silently vanish otherwise."""
    if PROMPT_PLACEHOLDER not in template:
        raise ValueError("The few-shot template needs a {prompt} placeholder where your prompt goes.")
    return template.replace(PROMPT_PLACEHOLDER, prompt.strip())
