"""The project's own lm-eval tasks (desktop/eval/tasks): well-formed questions, and lm-eval 0.4.13 loads them offline.

The questions were written for Tandem, so nothing upstream checks them: here each multiple-choice question has four
different choices and one right answer, the right answers are spread over the four positions, and the
short-answer questions have answers. lm-eval must then load both tasks with the Hugging Face Hub and datasets
offline, from a working directory that is not the tasks folder (``datasets`` alone resolves a relative
``data_files`` against the working directory; the tasks' loader resolves it against the YAML's folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from importlib.util import find_spec

import pytest

from desktop.eval import TASK_NAMES, TASKS_DIR

MIN_MC = 100


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (TASKS_DIR / name).read_text("utf-8").splitlines() if line.strip()]


def offline_env(home) -> dict:
    """lm-eval with no network: the Hub and datasets offline, their caches in a temporary folder."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(home / "hf"), HF_DATASETS_CACHE=str(home / "hf" / "datasets"))
    env.pop("HF_ENDPOINT", None)
    return env


def require_lm_eval() -> None:
    """lm-eval comes with the eval extra (scripts/test.sh installs it); CI must have it, elsewhere skip."""
    if find_spec("lm_eval") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("lm-eval is not installed (pip install -e '.[test,eval]')", pytrace=False)
        pytest.skip("lm-eval is not installed (pip install -e '.[test,eval]')")


def test_multiple_choice_questions_are_well_formed():
    rows = _rows("tandem_mc.jsonl")
    assert len(rows) >= MIN_MC
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["question"].lower() for r in rows}) == len(rows)
    for r in rows:
        choices = r["choices"]
        assert len(choices) == 4 and len({c.lower() for c in choices}) == 4, r
        assert all(c.strip() == c and c for c in choices), r
        assert isinstance(r["answer"], int) and 0 <= r["answer"] < 4, r
        assert r["question"].strip() == r["question"] and not r["question"].endswith(" "), r
    positions = Counter(r["answer"] for r in rows)
    assert min(positions[i] for i in range(4)) >= len(rows) // 5  # no position a model could learn to prefer
    assert set(Counter(r["category"] for r in rows)) == {"knowledge", "commonsense", "arithmetic", "words"}


def test_short_answer_questions_are_well_formed():
    rows = _rows("tandem_short.jsonl")
    assert 25 <= len(rows) <= 40
    assert len({r["question"].lower() for r in rows}) == len(rows)
    for r in rows:
        assert r["answers"] and all(isinstance(a, str) and a.strip() == a and a for a in r["answers"]), r


def test_each_task_yaml_names_its_questions():
    for name in TASK_NAMES:
        text = (TASKS_DIR / f"{name}.yaml").read_text("utf-8")
        assert f"task: {name}\n" in text
        assert "dataset_path: json\n" in text and f"test: {name}.jsonl" in text
        assert "custom_dataset: !function tandem_data.load" in text
        assert (TASKS_DIR / f"{name}.jsonl").is_file()


LOAD_SCRIPT = """
import json, sys
from lm_eval.tasks import TaskManager
loaded = TaskManager(include_path=sys.argv[1]).load(sys.argv[2].split(","))["tasks"]
out = {}
for name, task in loaded.items():
    docs = list(task.test_docs())
    d = docs[1]
    out[name] = {"n": len(docs), "type": task.OUTPUT_TYPE, "text": task.doc_to_text(d), "target": task.doc_to_target(d),
                 "choices": task.doc_to_choice(d) if task.OUTPUT_TYPE == "multiple_choice" else None,
                 "metrics": sorted(task._metric_fn_list)}
print("RESULT " + json.dumps(out))
"""


def test_lm_eval_loads_the_tasks_offline(tmp_path):
    require_lm_eval()
    env = offline_env(tmp_path)
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(TASKS_DIR), ",".join(TASK_NAMES)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    got = json.loads(line.removeprefix("RESULT "))
    mc, short = _rows("tandem_mc.jsonl"), _rows("tandem_short.jsonl")
    assert got["tandem_mc"] == {
        "n": len(mc), "type": "multiple_choice", "text": f"Question: {mc[1]['question']}\nAnswer:",
        "target": mc[1]["answer"], "choices": mc[1]["choices"], "metrics": ["acc", "acc_norm"]}
    assert got["tandem_short"] == {
        "n": len(short), "type": "generate_until", "text": f"Question: {short[1]['question']}\nAnswer:",
        "target": short[1]["answers"], "choices": None, "metrics": ["exact_match"]}
    assert (tmp_path / "hf").is_dir()  # datasets wrote its cache where it was told, not in the user's home
