"""The alignment lens: what instruction tuning changed, token by token (token shift, URIAL, ICLR 2024).

Qt-free and engine-agnostic: ``shift`` is the maths, ``preset`` the in-context alignment text,
``analyze`` one prompt on a pair of ``desktop.engine.model.Model`` objects, ``experiment`` a resumable
run over a prompt set and ``report`` its report. The CLI (``tandem shift``, ``tandem experiment``) calls
these, and so will Compare:

- "Alignment" view on a run's existing output (no new generation), from a worker thread:
  ``analyze.shift_answer(base, instruct, prompt, answer_ids_or_text, context=...)`` returns
  (``ShiftResult``, instruct ScoreResult, base ScoreResult). ``ShiftResult.tokens`` carry ``cls`` (colour)
  and ``base_top`` / ``rank`` / both logprobs (hover); ``.shares`` beside ``shift.PAPER_ROWS``;
  ``.top_shifted()`` for the table; ``.shares_by_position()`` and the per-token ranks for the profile plot.
  ``VocabMismatch`` (one line) is the view's refusal text for a pair from two families. ``context="chat"``
  (``analyze.CHAT_CONTEXT``) has the base model read the query through its own chat template: the same file
  on both sides, greedy, is then exactly 100 % unshifted.
- In-context alignment preset: ``preset.wrap_prompt(query)`` as the base model's prompt with
  ``preset.STOP`` as stop strings, ``preset.clean_answer`` on its output; ``context="icl"`` measures it, and
  ``shift.answer_agreement(base_ids, instruct_ids)`` says how far the base+preamble answer itself matches the
  instruct one (common start, shared stretches).
- "Run a prompt set…": ``experiment.Experiment(out_dir, Settings(...), load_prompts(path)).run(base,
  instruct, progress=callback, should_stop=flag)`` in a worker thread; ``Progress`` is a frozen value to
  emit as a signal; the return value is report.md's path to open.
"""
