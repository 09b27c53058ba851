"""Real models through the app's engine: templates, tokenizers, likelihoods and decoding on real weights.

Random-weight models (desktop/core/synth.py) keep the rest of the suite fast, but they hide what only trained
weights show: a tokenizer that loses text, a template that differs from Hugging Face's by one newline,
likelihoods that don't care what text they read. These tests use Gemma 3 270M (base, 262k vocabulary) and
SmolLM2-135M-Instruct (ChatML): two families, two different tokenizers.
"""

from __future__ import annotations

import json
import math

import llama_cpp
import pytest

from desktop.core.gguf_meta import read_metadata
from desktop.engine import FinalEvent, LoadOptions, SamplingParams, TokenEvent, load_model

THREADS = 1  # as tests/real/conftest.py: OpenMP on an oversubscribed 2-core CPU stalls

# Hugging Face's chat template for HuggingFaceTB/SmolLM2-135M-Instruct, applied with
# add_generation_prompt=True to one user message: the default system prompt comes first.
SMOL_WORLD_CUP = (
    "<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\n"
    "Who won the World Cup?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
SMOL_OWN_SYSTEM = (
    "<|im_start|>system\n"
    "Answer in one word.<|im_end|>\n"
    "<|im_start|>user\n"
    "Capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n"
    "Paris<|im_end|>\n"
    "<|im_start|>user\n"
    "And of Italy?<|im_end|>\n"
    "<|im_start|>assistant\n"
)

MULTILINGUAL = [
    "The quick brown fox jumps over the lazy dog.",
    "Größenwahn, Straße und Übermut: ein schöner Tag in München.",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "¿Dónde está la biblioteca? Está cerca de la estación.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "東京は日本の首都です。今日は良い天気ですね。",
    "北京欢迎你，长城很长。",
    "안녕하세요, 만나서 반갑습니다.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "Emoji: 🚀🔥👍🏽 and math: ∑ x² ≤ ∞, tabs\tand  double  spaces,\nnew lines\n\nand trailing space ",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code, with indentation",
]

ENGLISH = (
    "The library opened its doors in the spring of that year, after a long winter of repairs. On the first "
    "morning, a small crowd gathered outside, waiting for the staff to unlock the heavy wooden door. Children "
    "ran straight to the shelves of picture books, while their parents looked for newspapers and novels. By "
    "noon, every chair in the reading room was taken, and the librarians were busy answering questions about "
    "opening hours, library cards and the new computers near the window."
)


def _final(stream) -> tuple[FinalEvent, list[TokenEvent]]:
    tokens, final = [], None
    for event in stream:
        if isinstance(event, TokenEvent):
            tokens.append(event)
        elif isinstance(event, FinalEvent):
            final = event
    assert final is not None and final.error is None, final
    return final, tokens


def _perplexity(handle, text: str) -> float:
    first, rest = text.split(". ", 1)
    scored = handle.score(first + ".", " " + rest).tokens
    assert len(scored) > 50
    return math.exp(-sum(t.logprob for t in scored) / len(scored))


def test_the_real_files_are_what_the_tier_expects(real_models):
    gemma, smol = read_metadata(real_models.gemma), read_metadata(real_models.smol)
    assert (gemma.architecture, gemma.kind, gemma.vocab_size, gemma.has_chat_template) == ("gemma3", "base", 262_144, False)
    assert (smol.architecture, smol.kind, smol.vocab_size, smol.has_chat_template) == ("llama", "instruct", 49_152, True)


def test_smollm2_chat_template_renders_exactly_what_hugging_face_gives(smol):
    assert smol.render_chat([{"role": "user", "content": "Who won the World Cup?"}]) == SMOL_WORLD_CUP
    conversation = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"},
                    {"role": "user", "content": "And of Italy?"}]
    assert smol.render_chat(conversation, system="Answer in one word.") == SMOL_OWN_SYSTEM


@pytest.mark.parametrize("which", ["gemma", "smol"])
def test_multilingual_text_round_trips_through_the_real_tokenizers(real_models, which, request):
    """Token ids from the app's worker, text back from llama.cpp's own detokenizer: nothing may be lost."""
    path = getattr(real_models, which)
    handle = request.getfixturevalue(which)
    vocab_only = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        for text in MULTILINGUAL:
            ids = handle.tokenize(text)
            assert ids == vocab_only.tokenize(text.encode(), add_bos=False, special=False)
            assert len(ids) < len(text.encode()), text  # real merges, not one token per byte
            assert vocab_only.detokenize(ids).decode("utf-8") == text
    finally:
        vocab_only.close()


def test_an_english_paragraph_is_far_more_likely_under_real_weights(gemma, smol, tiny_base):
    random_model = load_model(tiny_base, LoadOptions(threads=THREADS, gpu_layers=0))
    try:
        random_ppl = _perplexity(random_model, ENGLISH)
    finally:
        random_model.close()
    gemma_ppl, smol_ppl = _perplexity(gemma, ENGLISH), _perplexity(smol, ENGLISH)
    print(f"\nperplexity: Gemma 3 270M {gemma_ppl:.1f}, SmolLM2 135M {smol_ppl:.1f}, random weights {random_ppl:.1f}")
    # Measured: 21.8 (Gemma), 32.0 (SmolLM2), 809 (random weights, with a far smaller vocabulary).
    assert gemma_ppl < 60 and smol_ppl < 60
    assert random_ppl > 10 * max(gemma_ppl, smol_ppl)


@pytest.mark.parametrize("which", ["gemma", "smol"])
def test_greedy_and_seeded_decoding_are_reproducible_across_processes(real_models, which):
    path = getattr(real_models, which)
    runs = []
    for _ in range(2):  # two loads: two worker processes
        handle = load_model(path, LoadOptions(threads=THREADS, gpu_layers=0))
        try:
            greedy, greedy_tokens = _final(handle.complete("The capital of France is", SamplingParams(
                temperature=0, max_tokens=24)))
            seeded, _ = _final(handle.complete("Once upon a time", SamplingParams(max_tokens=24, seed=1234)))
        finally:
            handle.close()
        runs.append((greedy.text, [t.token_id for t in greedy_tokens], seeded.text))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) >= 8 and runs[0][0].strip()


@pytest.mark.parametrize("which", ["gemma", "smol"])
def test_generation_logprobs_agree_with_score_of_the_same_tokens(which, request):
    handle = request.getfixturevalue(which)
    prompt = "The first person to walk on the Moon was"
    # Greedy without the repeat penalty: then the chosen token is the model's own first choice.
    greedy = SamplingParams(temperature=0, repeat_penalty=1.0, max_tokens=16, logprobs=5)
    final, events = _final(handle.complete(prompt, greedy))
    scored = handle.score(prompt, final.text).tokens
    assert [t.token_id for t in scored] == [e.token_id for e in events]
    for event in events:
        assert event.top and event.top[0].token_id == event.token_id  # greedy picks the top token
        assert event.logprob == pytest.approx(event.top[0].logprob)
        assert -30 < event.logprob <= 0
    # Decoding one token at a time and scoring in one batch run different kernels: close, not equal
    # (measured on Gemma: mean 0.02, largest 0.11 nats with flash attention, 0.22 without).
    gaps = [abs(e.logprob - t.logprob) for e, t in zip(events, scored)]
    assert sum(gaps) / len(gaps) < 0.06 and max(gaps) < 0.35, gaps


def test_cross_scoring_across_two_tokenizers(gemma, smol):
    """Each model scores the other's answer in its own tokens; the texts must survive the change of vocabulary."""
    question = "Who won the World Cup?"  # Gemma's answer starts with "\n\n": a token boundary case
    base_text, _ = _final(gemma.complete(question, SamplingParams(temperature=0, max_tokens=24)))
    chat_text, _ = _final(smol.chat([{"role": "user", "content": question}], SamplingParams(temperature=0,
                                                                                               max_tokens=24)))
    base_text, chat_text = base_text.text, chat_text.text
    assert base_text.strip() and chat_text.strip()
    by_instruct = smol.score(question, base_text, as_chat=True).tokens
    by_base = gemma.score(question, chat_text).tokens
    assert "".join(t.text for t in by_instruct) == base_text
    assert "".join(t.text for t in by_base) == chat_text
    assert all(t.token_id < 49_152 for t in by_instruct)
    # Really re-tokenized: Gemma's tokens for the reply are not SmolLM2's.
    assert [t.token_id for t in by_base] != smol.tokenize(chat_text)[-len(by_base):]
    assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in (*by_instruct, *by_base))


def test_importing_the_real_pair_gives_a_library_with_a_base_and_an_instruct_model(real_models, tmp_path, capsys):
    """README's set-up command for machines without the Hub: `tandem models import $(bash scripts/real_models.sh)`."""
    from desktop.cli import main
    from desktop.core.settings import Settings, save_settings

    save_settings(Settings(models_dir=str(tmp_path / "lib")))
    assert main(["models", "import", str(real_models.gemma), str(real_models.smol)]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    listed = {e["name"]: e for e in json.loads(capsys.readouterr().out) if e["source"] == "library"}
    assert {n: (e["kind"], e["architecture"], e["broken"]) for n, e in listed.items()} == {
        "gemma-3-270m-q4_k_m": ("base", "gemma3", None),
        "SmolLM2-135M-Instruct.Q4_1": ("instruct", "llama", None),
    }


def test_a_reused_prefix_older_than_gemmas_sliding_window_gives_the_fresh_answer(real_models, gemma):
    """Gemma keeps only its 512-token window in the SWA layers' cache. A prompt sharing a short prefix with a long
    earlier one can't reuse it (the window before the prefix's end is gone): the answer must be a fresh one's."""
    long_prompt = ENGLISH * 12  # ~1,100 tokens: past the SWA cache (512-token window + a 256-token step)
    short_prompt = ENGLISH[:200] + " In the evening,"
    greedy = SamplingParams(temperature=0, max_tokens=16)
    _final(gemma.complete(long_prompt, greedy))
    reused, _ = _final(gemma.complete(short_prompt, greedy))
    fresh_handle = load_model(real_models.gemma, LoadOptions(threads=THREADS, gpu_layers=0))
    try:
        fresh, _ = _final(fresh_handle.complete(short_prompt, greedy))
    finally:
        fresh_handle.close()
    assert reused.stats.prompt_eval_tokens == reused.stats.prompt_tokens  # evaluated again from the start
    assert reused.text == fresh.text
