"""`tandem eval` on the tiny random-weight models, as a person runs it (a subprocess): the one-line errors
before anything loads, resume after SIGKILL, and no network touched. The numbers the real pair gets are
checked in tests/real/test_eval_real.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from desktop.core.settings import Settings, save_settings
from tests.conftest import TEST_THREADS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("lm_eval") is None, reason="lm-eval (the eval extra) not installed")

# Runs `tandem eval` with every outgoing connection that is not loopback refused and reported.
GUARDED = textwrap.dedent("""
    import socket, sys
    _connect = socket.socket.connect
    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
            sys.stderr.write(f"NETWORK {address!r}\\n")
            raise OSError("network blocked by the test")
        return _connect(self, address)
    socket.socket.connect = connect
    from desktop.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def tandem(*args: str, timeout: float = 600, prelude: str = "", env: dict | None = None):
    code = prelude + "from desktop.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env=env)


def eval_args(base: Path, instruct: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--base", str(base), "--instruct", str(instruct), "--threads", str(TEST_THREADS),
            "--out", str(out), *extra]


def one_error_line(result) -> str:
    assert result.returncode == 1, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tandem: error: ")
    return lines[0]


def test_start_up_never_imports_lm_eval():
    code = ("import sys, desktop.cli, desktop.eval, desktop.eval.plan, desktop.eval.report, desktop.app; "
            "desktop.cli.build_parser(); print(sorted(m for m in sys.modules if m.startswith('lm_eval')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_lm_eval_says_what_to_install(tiny_base, tiny_instruct, tmp_path):
    result = tandem(*eval_args(tiny_base, tiny_instruct, tmp_path / "out", "--tasks", "tandem_mc"),
                    prelude="import sys; sys.modules['lm_eval'] = None; ")
    line = one_error_line(result)
    assert 'pip install "tandem-llm[eval]"' in line
    assert not (tmp_path / "out").exists()


def test_broken_include_yaml_is_one_line(tiny_base, tiny_instruct, tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mine.yaml").write_text("task: mine\ndoc_to_text: [unclosed\n", encoding="utf-8")
    result = tandem(*eval_args(tiny_base, tiny_instruct, tmp_path / "out", "--tasks", "mine",
                               "--include-path", str(tasks)))
    line = one_error_line(result)
    assert "mine.yaml" in line


def test_unknown_task_names_the_closest_before_loading(tiny_base, tiny_instruct, tmp_path):
    result = tandem(*eval_args(tiny_base, tiny_instruct, tmp_path / "out", "--tasks", "tandem_mcq"))
    line = one_error_line(result)
    assert "unknown task 'tandem_mcq'" in line and "tandem_mc" in line.split("closest:")[1]
    assert "loading" not in result.stderr


def test_model_that_fails_to_load_is_one_line(tiny_instruct, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    result = tandem(*eval_args(bad, tiny_instruct, tmp_path / "out", "--tasks", "tandem_mc", "--limit", "2"))
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tandem: error: ") and "broken.gguf" in last
    assert "Traceback" not in result.stderr


def _cached(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("select count(*) from unnamed").fetchone()[0]
    except sqlite3.Error:
        return 0


def _sent(stderr: str, run: str) -> list[int]:
    """The request counts the runs' progress lines announce: '<run> (<tasks>): N loglikelihood requests to send'."""
    return [int(ln.split(": ")[1].split()[0]) for ln in stderr.splitlines()
            if ln.startswith(f"{run} (") and "requests to send" in ln]


def test_sigkill_mid_run_then_the_same_command_resumes_offline(tiny_base, tiny_instruct, tmp_path):
    out = tmp_path / "out"
    args = eval_args(tiny_base, tiny_instruct, out, "--tasks", "tandem_mc", "--limit", "40",
                     "--instruct-template", "raw", "--json")
    code = "from desktop.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        dbs = []
        while time.monotonic() < deadline and proc.poll() is None:
            dbs = sorted((out / "cache").glob("base-*.db")) if (out / "cache").is_dir() else []
            if dbs and _cached(dbs[0]) >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its server thread and both model workers
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    done = _cached(dbs[0])
    assert 10 <= done < 160
    save_settings(Settings(offline=True))  # the subprocess reads TANDEM_HOME's settings
    again = subprocess.run([sys.executable, "-c", GUARDED, *args], capture_output=True, text=True, cwd=REPO,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert "NETWORK" not in again.stderr
    left = _sent(again.stderr, "base")
    assert left and left[0] <= 160 - done, again.stderr  # what the cache held was not sent again
    summary = json.loads(again.stdout)
    assert [r["run"] for r in summary["runs"]] == ["base", "instruct-raw"]
    rows = [json.loads(ln) for ln in (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted((r["run"], r["doc_id"]) for r in rows) == sorted(
        (run, i) for run in ("base", "instruct-raw") for i in range(40))
    acc = next(m for m in summary["metrics"] if m["metric"] == "acc")["values"]["base"]
    assert acc == pytest.approx(sum(r["correct"] for r in rows if r["run"] == "base") / 40)
    # a third run of the same command sends nothing at all
    third = tandem(*args)
    assert third.returncode == 0, third.stderr
    assert _sent(third.stderr, "base") == [] and _sent(third.stderr, "instruct-raw") == []
    assert json.loads(third.stdout)["metrics"] == summary["metrics"]


def test_endpoint_that_cannot_score_is_one_line_before_anything_runs(tiny_instruct, tmp_path):
    from tests.remote.faultserver import FaultServer

    srv = FaultServer()  # Ollama's documented routes: it returns no logprobs for a given prompt
    srv.routes[("GET", "/v1/models")] = lambda r: r.json({"object": "list", "data": [
        {"id": "llama3.1:8b", "object": "model", "created": 1, "owned_by": "library"}]})
    srv.routes[("GET", "/api/tags")] = lambda r: r.json({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b"}]})
    srv.routes[("GET", "/api/version")] = lambda r: r.json({"version": "0.13.0"})
    try:
        result = tandem("eval", "--base-endpoint", srv.url, "--instruct", str(tiny_instruct), "--tasks",
                        "tandem_mc", "--out", str(tmp_path / "out"))
    finally:
        srv.stop()
    line = one_error_line(result)
    assert "can't score given text" in line and "llama3.1:8b" in line
    assert not (tmp_path / "out").exists()


def test_requests_longer_than_the_context_are_counted_and_named(tiny_base, tiny_instruct, tmp_path):
    out = tmp_path / "out"
    result = tandem(*eval_args(tiny_base, tiny_instruct, out, "--tasks", "tandem_mc", "--limit", "2",
                               "--instruct-template", "raw", "--ctx", "256", "--num-fewshot", "25", "--json"))
    assert result.returncode == 0, result.stderr
    runs = {r["run"]: r for r in json.loads(result.stdout)["runs"]}
    # 25 examples before each question can't fit 256 tokens: 2 questions x 4 choices cut, each run
    assert runs["base"]["n_ctx"] == 256 and runs["base"]["truncated"] == 8
    assert "8 requests were longer than the context (256 tokens)" in result.stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Truncated requests (16)" in report and "tokens > 256: 'Question: " in report


def test_a_missing_model_file_is_one_line_before_anything_loads(tiny_instruct, tmp_path):
    result = tandem(*eval_args(tmp_path / "nope.gguf", tiny_instruct, tmp_path / "out", "--tasks", "tandem_mc"))
    line = one_error_line(result)
    assert "nope.gguf" in line


def test_the_same_command_finds_its_dated_folder_again(tiny_base, tiny_instruct, tandem_home):
    from desktop.core.paths import data_dir
    from desktop.eval.plan import EvalPlan, default_out_dir

    plan = EvalPlan(base=str(tiny_base), instruct=str(tiny_instruct), tasks=("tandem_mc",), limit=5)
    first = default_out_dir(plan, data_dir())
    assert first.parent == data_dir() / "eval" and first.name.endswith(plan.key())
    first.mkdir(parents=True)
    assert default_out_dir(plan, data_dir()) == first  # resumes there
    other = EvalPlan(base=str(tiny_base), instruct=str(tiny_instruct), tasks=("tandem_mc",), limit=6)
    assert other.key() != plan.key() and default_out_dir(other, data_dir()) != first
    threads = EvalPlan(base=str(tiny_base), instruct=str(tiny_instruct), tasks=("tandem_mc",), limit=5, threads=2)
    assert threads.key() == plan.key()  # threads don't change the answers


def test_chat_run_on_a_model_without_a_template_is_one_line(tiny_base, tmp_path):
    result = tandem(*eval_args(tiny_base, tiny_base, tmp_path / "out", "--tasks", "tandem_mc", "--limit", "2",
                               "--instruct-template", "chat"))
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tandem: error: instruct-chat: the server answered 400"), result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "results" / "base.json").is_file()  # the base run before it is kept
