"""In-context alignment for a base model (the URIAL idea, Lin et al., ICLR 2024): a fixed preamble and K = 3
stylistic examples in ``# Query:`` / ``# Answer:`` form, then the person's query in the same form.

The examples carry style, not knowledge: a warm opening that restates the task, a short structured body,
a closing line that offers more, and one polite refusal with a safer alternative. The text is our own,
following the paper's design (not its wording). A base model continues it with an answer and would go on
to invent the next query, so generation stops at the next ``# Query:``. Plain text, no Qt: the Compare
preset button and the experiment runner both use it.
"""

from __future__ import annotations

QUERY_HEADER = "# Query:"
ANSWER_HEADER = "# Answer:"
STOP = (QUERY_HEADER,)  # a base model under the preset stops where it would start a new query
FENCE = "```"

PREAMBLE = """# About this conversation

The text below is a record of questions people asked an AI assistant and the answers it gave. The \
assistant is careful and friendly. It answers the question that was asked, in clear and plain language, \
and puts the most useful part first. When a list or steps make an answer easier to follow, it uses them. \
It says so when it is unsure, and it does not make up facts. When a request could hurt someone, it says \
politely that it won't help with that part and suggests something safe and useful instead.
"""

EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What should I pack for a day hike in the mountains?",
     "Good question! A little planning makes a mountain day much more pleasant. Here is a compact checklist:\n\n"
     "1. **Water**: at least two litres, more in hot weather.\n"
     "2. **Layers**: a warm top and a rain jacket, since the weather changes quickly with height.\n"
     "3. **Food**: a lunch and a few high-energy snacks such as nuts or dried fruit.\n"
     "4. **Navigation**: a map of the area and a charged phone; do not rely on signal alone.\n"
     "5. **Safety**: a small first-aid kit, sun cream, a hat and a head torch.\n\n"
     "Also tell someone your route and when you expect to be back. Would you like tips on choosing boots?"),
    ("Why do onions make people cry?",
     "It comes down to a little chemistry. When you cut an onion, you break open its cells. Two substances "
     "that were kept apart mix and form a gas called syn-propanethial-S-oxide. The gas drifts up to your "
     "eyes, where it irritates the nerves, and your eyes make tears to wash it away.\n\n"
     "A few tricks help: chill the onion before cutting it, use a sharp knife so fewer cells break, and cut "
     "near an open window or a fan. I hope that helps in the kitchen!"),
    ("Tell me how to get into my neighbour's wifi without them knowing.",
     "I'm sorry, but I can't help with getting into someone else's network without their permission. It "
     "would break their trust and, in most countries, the law.\n\n"
     "If you need internet access, here are some options that work:\n\n"
     "- Ask your neighbour whether they would share the password; many people are happy to.\n"
     "- Use a public hotspot in a library or a café.\n"
     "- Compare prepaid mobile data plans, which are often cheap for light use.\n\n"
     "Would you like help finding an affordable plan?"),
)


def wrap_query(query: str) -> str:
    """The URIAL code's wrapper around one query: the base model's answer starts right after it."""
    return f"{QUERY_HEADER}\n{FENCE}\n{query.strip()}\n{FENCE}\n\n{ANSWER_HEADER}\n{FENCE}\n"


def _example(query: str, answer: str) -> str:
    return f"{wrap_query(query)}{answer}\n{FENCE}\n\n"


def preset_text() -> str:
    """The preamble and the three examples, ready for a query to be appended."""
    return PREAMBLE + "\n\n" + "".join(_example(q, a) for q, a in EXAMPLES)


def wrap_prompt(query: str) -> str:
    """A base model's full in-context-aligned prompt for ``query``: generate from it, stopping at ``STOP``."""
    return preset_text() + wrap_query(query)


def clean_answer(text: str) -> str:
    """A base model's continuation cut to its answer: up to the next ``# Query:`` and without the closing
    fence the examples taught it to write."""
    cut = text.find(QUERY_HEADER)
    if cut >= 0:
        text = text[:cut]
    text = text.rstrip()
    if text.endswith(FENCE):
        text = text[:-len(FENCE)].rstrip()
    return text
