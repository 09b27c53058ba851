"""Smoke tests of the benchmark suite's parts (no timing asserts: the bench itself is not a unit test).

The model writer must produce what synth writes (only the random values differ) and llama.cpp must run
it; the prompts must have the exact token counts the comparisons rely on; the result files must carry
the verdicts their targets imply; ``tandem bench`` must parse its options.
"""

from __future__ import annotations

import json
import mmap
import sys
from pathlib import Path

import pytest

from bench import model as bench_model
from bench.engine_figures import letters_prompt
from bench.report import Figure, Results, Target, markdown_table, write_results
from bench.system import mapped_memory
from desktop.core.synth import TINY, write_llama_gguf

TEST_THREADS = 1


def _describe(path: Path) -> tuple[dict, list[tuple]]:
    """A GGUF file's metadata (values) and tensors (name, shape, type), for comparing two writers."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta = {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.name":
            continue
        if fld.types and fld.types[0] == gguf.GGUFValueType.ARRAY:
            meta[name] = len(fld.data)
        else:
            meta[name] = fld.parts[fld.data[0]].tolist() if fld.data else None
    tensors = [(t.name, tuple(int(x) for x in t.shape), t.tensor_type.name) for t in reader.tensors]
    return meta, tensors


@pytest.mark.parametrize("instruct", [False, True])
def test_bench_writer_matches_synth_q8_0(tmp_path, instruct):
    ours = bench_model.write_q8_0_llama_gguf(tmp_path / "ours.gguf", instruct=instruct, shape=TINY, seed=3)
    theirs = write_llama_gguf(tmp_path / "synth.gguf", instruct=instruct, shape=TINY, seed=3, quant="Q8_0")
    assert _describe(ours) == _describe(theirs)
    assert ours.stat().st_size == theirs.stat().st_size
    assert ours.read_bytes() != theirs.read_bytes()  # the weights are drawn differently


def test_ensure_model_generates_once_then_reuses(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_model.SHAPES, "tiny", TINY)
    first = bench_model.ensure_model("tiny", instruct=False, directory=tmp_path)
    assert first.generated_s is not None and first.path.is_file()
    mtime = first.path.stat().st_mtime_ns
    again = bench_model.ensure_model("tiny", instruct=False, directory=tmp_path)
    assert again.generated_s is None and again.path == first.path
    assert again.path.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match="unknown shape"):
        bench_model.ensure_model("7b", instruct=False, directory=tmp_path)


def test_bench_model_runs_and_prompts_have_exact_token_counts(tmp_path):
    from desktop.engine import LoadOptions, SamplingParams, load_model

    path = bench_model.write_q8_0_llama_gguf(tmp_path / "m.gguf", instruct=False, shape=TINY)
    with load_model(path, LoadOptions(threads=TEST_THREADS, n_ctx=1024)) as handle:
        for n in (2, 17, 129):
            assert handle.count_tokens(letters_prompt(n, str(n)), special=True) == n
        # Two salts share only BOS: the whole rest of the prompt is evaluated (what the prefill figure needs).
        handle.complete(letters_prompt(65, "a", first=1), SamplingParams(max_tokens=1, seed=1)).text()
        stream = handle.complete(letters_prompt(65, "a", first=2), SamplingParams(max_tokens=4, seed=1))
        stream.text()
        assert stream.final.stats.prompt_eval_tokens == 64
        assert stream.final.stats.completion_tokens >= 1


def _figures() -> Results:
    results = Results(machine={"cpu": "Test CPU", "cores": 2}, config={"shape": "tiny", "command": "tandem bench"})
    results.add(Figure(key="decode", label="Decode", unit="tok/s", value=41.0, reference=43.0,
                       reference_label="llama-bench", target=Target("ratio", ">=", 0.97, ">= 97 %"),
                       samples=(40.0, 41.0, 42.0)))
    results.add(Figure(key="ttft", label="TTFT", unit="s", value=0.12, reference=0.10, reference_label="turn 2",
                       target=Target("ratio", "<=", 1.3, "<= 1.3×")))
    results.add(Figure(key="stall", label="Stall", unit="ms", value=None, target=Target("value", "<=", 33, "")))
    results.add(Figure(key="pair", label="Compare", unit="tok/s", value=20.0, reference=40.0))
    results.note("a run note")
    return results


def test_result_files_carry_verdicts(tmp_path):
    results = _figures()
    json_path, md_path = write_results(results, tmp_path, "run")
    data = json.loads(json_path.read_text())
    verdicts = {f["key"]: f["verdict"] for f in data["figures"]}
    assert verdicts == {"decode": "FAIL", "ttft": "PASS", "stall": "n/a", "pair": "info"}
    assert data["summary"] == {"pass": 1, "fail": 1, "not_measured": 1}
    assert data["figures"][0]["ratio"] == pytest.approx(41 / 43)
    text = md_path.read_text()
    assert "| Decode | 41.0 tok/s | 43.0 tok/s (llama-bench) | 95.3 % | >= 97 % | FAIL |" in text
    assert "- cpu" not in text and "- CPU: Test CPU" in text and "a run note" in text
    assert (tmp_path / "latest.json").read_text() == json_path.read_text()
    assert markdown_table(results).count("\n") == 5


def test_paired_ratio_is_the_median_of_back_to_back_pairs(tmp_path):
    """A machine that slows down during the run: the medians compare samples taken minutes apart, the
    pairs compare each run with its neighbour; the verdict follows the pairs and the report shows both."""
    from bench.engine_figures import EngineBench, EngineConfig

    speed = iter([44.0, 43.0, 40.0, 41.0, 36.0, 35.5])  # ref, app, app, ref, ref, app (ABBA order)
    bench = EngineBench(EngineConfig(threads=1, reps=3), Results(machine={}, config={}), ref=None)
    app_s, ref_s, pairs = bench.interleave(3, lambda rep: next(speed), lambda rep: next(speed))
    assert app_s == [43.0, 40.0, 35.5] and ref_s == [44.0, 41.0, 36.0]
    assert pairs == pytest.approx([43 / 44, 40 / 41, 35.5 / 36])
    fig = Figure(key="d", label="Decode", unit="tok/s", value=40.0, reference=41.0, reference_label="llama-bench",
                 target=Target("ratio", ">=", 0.97, ">= 97 %"), samples=tuple(app_s), reference_samples=tuple(ref_s),
                 pair_ratios=tuple(pairs))
    assert fig.ratio == pytest.approx(43 / 44) and fig.ratio_of_medians == pytest.approx(40 / 41)
    assert fig.verdict == "PASS"
    results = Results(machine={}, config={})
    results.add(fig)
    _, md_path = write_results(results, tmp_path, "run")
    text = md_path.read_text()
    assert "| 97.7 % | >= 97 % | PASS |" in text
    assert "median of 3 back-to-back pairs (pairs range 97.6 % to 98.6 %; ratio of the medians 97.6 %)" in text


def test_target_edges():
    at_least = Target("ratio", ">=", 0.97, "")
    assert at_least.check(None, 0.97) is True and at_least.check(None, 0.9699) is False
    at_most = Target("value", "<=", 150, "")
    assert at_most.check(150.0, None) is True and at_most.check(150.1, None) is False
    assert at_most.check(None, 2.0) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/smaps")
def test_mapped_memory_tells_file_pages_from_the_rest(tmp_path):
    import os

    path = tmp_path / "blob.bin"
    size = 8 * 1024 * 1024
    path.write_bytes(os.urandom(size))
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        checksum = sum(mapped[i] for i in range(0, size, 4096))  # touch every page
        mem = mapped_memory(os.getpid(), path)
    assert checksum >= 0
    assert mem is not None
    assert size * 0.9 <= mem.file_rss <= size * 1.1
    assert mem.beyond_file == mem.rss - mem.file_rss > 0


def test_cli_parses_bench_options():
    from desktop.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["bench", "--quick", "--shape", "1.5b", "--threads", "2", "--out", "x"])
    assert (args.quick, args.shape, args.threads, args.out) == (True, "1.5b", 2, Path("x"))
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["bench", "--threads", "0"])
    assert exc.value.code == 2


def test_decode_targets_by_model():
    from bench.engine_figures import decode_target

    bounds = {name: decode_target(Path(name)).bound for name in (
        "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf", "tandem-bench-0.5b-base-q8_0-g1-s0.gguf",
        "my-own-model.gguf")}
    assert bounds == {"SmolLM2-135M-Instruct.Q4_1.gguf": 0.92, "gemma-3-270m-q4_k_m.gguf": 0.95,
                      "tandem-bench-0.5b-base-q8_0-g1-s0.gguf": 0.97, "my-own-model.gguf": 0.95}


def test_bench_on_a_users_own_model(tmp_path, tiny_base, capsys):
    """`tandem bench --model PATH`: the engine figures on any GGUF, each tagged with the file and judged."""
    from desktop.cli import main

    out = tmp_path / "results"
    code = main(["bench", "--model", str(tiny_base), "--quick", "--no-reference", "--threads", str(TEST_THREADS),
                 "--only", "metadata,decode,logprobs", "--depth", "64", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads(next(out.glob("*-tiny-base-quick.json")).read_text())
    figures = {f["key"]: f for f in data["figures"]}
    assert set(figures) == {"metadata_tiny-base", "decode_d0_tiny-base", "decode_d64_tiny-base",
                            "logprobs_top5_tiny-base"}
    assert figures["metadata_tiny-base"]["value"] > 0 and figures["metadata_tiny-base"]["target"]["bound"] == 100
    assert figures["decode_d64_tiny-base"]["value"] > 0 and figures["decode_d64_tiny-base"]["verdict"] == "n/a"
    assert figures["logprobs_top5_tiny-base"]["verdict"] in ("PASS", "FAIL")
    assert data["config"]["command"].startswith(f"tandem bench --model {tiny_base}")
    verdict = figures["logprobs_top5_tiny-base"]["verdict"]
    assert "| Metadata read (tiny-base) |" in printed and f"{verdict} Decode with top-5 logprobs (tiny-base)" in printed
    with pytest.raises(SystemExit, match="unknown group"):
        main(["bench", "--model", str(tiny_base), "--only", "stall", "--out", str(out)])


def test_slots_throughput_runs_both_sides(tiny_base):
    from bench.parallel import slots_throughput

    fig = slots_throughput(tiny_base, k=2, m=6, threads=TEST_THREADS, n_ctx=256, prompt_tokens=8)
    assert (fig.k, fig.m, len(fig.shares)) == (2, 6, 2)
    assert fig.together_tps > 0 and fig.sequential_tps > 0 and fig.speedup > 0


def test_cli_parses_serve_bench_options():
    from desktop.cli import build_parser

    args = build_parser().parse_args(["bench", "--serve", "--quick", "--only", "stream,lmeval", "--limit", "5"])
    assert (args.serve, args.quick, args.only, args.limit) == (True, True, "stream,lmeval", 5)
    assert build_parser().parse_args(["bench"]).serve is False  # opt-in: the default bench is unchanged


def test_serve_bench_stream_and_ttfb_smoke(tmp_path, tiny_base, capsys):
    """`tandem bench --serve` on a tiny model: a real tandem serve and the engine in-process, each figure
    measured and judged (no timing is asserted: the verdict may go either way on a busy machine)."""
    from desktop.cli import main

    out = tmp_path / "results"
    code = main(["bench", "--serve", "--quick", "--only", "stream,ttfb", "--threads", str(TEST_THREADS),
                 "--model", str(tiny_base), "--out", str(out)])
    assert code == 0
    data = json.loads(next(out.glob("*-serve-quick.json")).read_text())
    figures = {f["key"]: f for f in data["figures"]}
    assert set(figures) == {"serve_stream_tiny-base", "serve_ttfb_tiny-base"}
    stream = figures["serve_stream_tiny-base"]
    assert stream["value"] > 0 and stream["reference"] > 0 and len(stream["pair_ratios"]) == 2
    assert stream["verdict"] in ("PASS", "FAIL") and stream["target"]["bound"] == 0.97
    ttfb = figures["serve_ttfb_tiny-base"]
    assert len(ttfb["samples"]) == 2 and ttfb["verdict"] in ("PASS", "FAIL") and ttfb["target"]["bound"] == 20.0
    printed = capsys.readouterr().out
    assert "Streaming decode through the API (tiny-base)" in printed and "results:" in printed
    with pytest.raises(SystemExit, match="unknown serve group"):
        main(["bench", "--serve", "--only", "decode", "--model", str(tiny_base), "--out", str(out)])


def test_concurrent_streams_time_every_client(tmp_path, tiny_base):
    """The 4-client figure's client: four streams started together against tandem serve --parallel 4, each with
    its own token count, time to first byte and wall time."""
    from bench.serve_bench import concurrent_streams
    from bench.serve_refs import RunningServer, free_port, served_id, tandem_serve_cmd

    port = free_port()
    with RunningServer(tandem_serve_cmd([tiny_base], port, threads=TEST_THREADS, parallel=4, n_ctx=512), port,
                       "/health", tmp_path / "serve.log") as server:
        url = f"{server.url}/models/{served_id(tiny_base)}/v1/completions"
        bodies = [{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.8, "seed": i} for i in range(4)]
        streams, wall = concurrent_streams(url, bodies)
    assert len(streams) == 4
    for s in streams:
        assert 1 <= s.tokens <= 8 and 0 < s.ttfb_s <= s.wall_s <= wall
