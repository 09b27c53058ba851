"""Prompt sets: the shipped one and the two file formats."""

from __future__ import annotations

import json

import pytest

from desktop.core.errors import ExperimentError
from desktop.lens.experiment import builtin_prompts_path, load_prompts

KINDS = {"list", "summarize", "explain", "write", "translate", "factual", "creative", "decline"}


def test_the_shipped_set_has_about_fifty_prompts_of_every_directive_kind():
    prompts = load_prompts(builtin_prompts_path())
    assert 45 <= len(prompts) <= 60
    assert {p.kind for p in prompts} == KINDS
    assert all(sum(p.kind == k for p in prompts) >= 5 for k in KINDS)
    assert len({p.text for p in prompts}) == len(prompts)


def test_jsonl_and_txt_files(tmp_path):
    j = tmp_path / "p.jsonl"
    j.write_text(json.dumps({"prompt": "Hi?", "id": "a"}) + "\n\n" + json.dumps({"text": "Yo", "kind": "x"}) + "\n")
    assert [(p.id, p.text, p.kind) for p in load_prompts(j)] == [("a", "Hi?", ""), ("2", "Yo", "x")]
    t = tmp_path / "p.txt"
    t.write_text("# a comment\nFirst prompt\n\nSecond prompt\n")
    assert [p.text for p in load_prompts(t)] == ["First prompt", "Second prompt"]


@pytest.mark.parametrize("name, content, message", [
    ("p.csv", "a,b", "a .jsonl or a .txt"),
    ("p.jsonl", "{not json\n", "line 1 is not JSON"),
    ("p.jsonl", '{"id": "x"}\n', "no \"prompt\""),
    ("p.txt", "\n# only comments\n", "holds no prompts"),
    ("p.jsonl", '{"prompt": "a", "id": "1"}\n{"prompt": "b", "id": "1"}\n', "appears twice"),
])
def test_bad_prompt_files_are_one_line_errors(tmp_path, name, content, message):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(ExperimentError, match=message):
        load_prompts(f)
    with pytest.raises(ExperimentError, match="No prompt file"):
        load_prompts(tmp_path / "missing.jsonl")
