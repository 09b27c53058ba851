"""The serve bench (issue 19's targets): ``tandem serve`` measured against the engine itself and the other servers.

``python -m bench.serve_bench [--quick] [--only GROUPS] [--threads N] [--reps N] [--limit N] [--model PATH ...]``;
``tandem bench --serve`` runs the same. It uses the two real models (scripts/real_models.sh, ``TANDEM_REAL_MODELS``)
unless ``--model`` names files. Each group runs alone with ``--only``; ``--quick`` is a smoke run (small counts,
figures not to be quoted). Figures print as they finish; JSON and Markdown land in bench/results/.

- ``stream``: streaming decode through the HTTP API vs the engine's own tok/s, per model; median of >= 15 ABBA
  pairs; target >= 97 %.
- ``parallel``: 4 concurrent streaming clients on one model, ``tandem serve --parallel 4`` vs ``llama-server
  --parallel 4`` (same file, threads, context); aggregate >= 90 % of llama-server's and every client >= 20 % of the
  aggregate.
- ``lmeval``: lm-eval on tandem_mc (120 questions) through ``local-completions`` against tandem serve vs its
  ``gguf`` backend against ``llama_cpp.server``, same model and threads, batch size 1, one request at a time;
  target >= 5x faster, and the accuracy equal to the direct reference's (``Llama(logits_all=True)``).
- ``ttfb``: time to the first byte of a streamed completion from an idle server vs the model's own time to first
  token in-process; target <= 20 ms over it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

if __package__ in (None, ""):  # `python bench/serve_bench.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Figure, Results, Target, markdown_table, write_results  # noqa: E402
from bench.serve_refs import (  # noqa: E402
    RunningServer,
    free_port,
    llama_cpp_server_cmd,
    llama_server_cmd,
    served_id,
    tandem_serve_cmd,
)
from bench.system import machine_info  # noqa: E402

Log = Callable[[str], None]
GROUPS = ("stream", "parallel", "lmeval", "ttfb")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROMPT = "Once upon a time, in a small village by the sea, there lived"


@dataclass(frozen=True)
class ServeConfig:
    threads: int = 2
    reps: int = 15  # ABBA pairs per ratio
    n_gen: int = 128  # tokens per streamed completion
    parallel: int = 4
    lmeval_limit: int | None = None  # None: the whole task
    ttfb_reps: int = 15
    idle_s: float = 1.0  # the server sits idle this long before each time-to-first-byte request
    n_ctx: int = 4096


def real_pair() -> list[Path]:
    folder = Path(os.environ.get("TANDEM_REAL_MODELS") or Path.home() / ".cache" / "tandem" / "real-models")
    pair = [folder / "gemma-3-270m-q4_k_m.gguf", folder / "SmolLM2-135M-Instruct.Q4_1.gguf"]
    missing = [p.name for p in pair if not p.is_file()]
    if missing:
        raise SystemExit(f"the real models are missing ({', '.join(missing)} in {folder}): run scripts/real_models.sh")
    return pair


# ----- streaming clients -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Streamed:
    ttfb_s: float  # request sent -> first byte of the body
    ttft_s: float | None  # request sent -> first chunk with text
    tokens: int  # completion tokens (the usage chunk's count)
    decode_s: float  # first text chunk -> last text chunk
    wall_s: float

    @property
    def decode_tps(self) -> float | None:
        return (self.tokens - 1) / self.decode_s if self.tokens > 2 and self.decode_s > 0 else None


def stream_completion(client: httpx.Client, url: str, body: dict) -> Streamed:
    """POST a streamed completion (SSE) and time it; tokens from the final usage chunk (``include_usage``)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first_byte = first_text = last_text = None
    tokens = 0
    with client.stream("POST", url, json=body, timeout=600) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            now = time.perf_counter()
            first_byte = first_byte or now
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if any(c.get("text") for c in chunk.get("choices") or []):
                first_text = first_text or now
                last_text = now
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens") or 0)
    end = time.perf_counter()
    first_byte = first_byte or end
    return Streamed(first_byte - started, (first_text - started) if first_text else None, tokens,
                    (last_text - first_text) if first_text and last_text else 0.0, end - started)


def concurrent_streams(url: str, bodies: Sequence[dict]) -> tuple[list[Streamed], float]:
    """Start every body at once (one connection each); returns each stream and the wall time of them all."""
    out: list[Streamed | None] = [None] * len(bodies)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        try:
            with httpx.Client() as client:
                barrier.wait()
                out[i] = stream_completion(client, url, bodies[i])
        except BaseException as exc:  # reported below, on the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [s for s in out if s is not None], time.perf_counter() - started


# ----- the bench ---------------------------------------------------------------------------------------------
class ServeBench:
    def __init__(self, cfg: ServeConfig, results: Results, folder: Path, log: Log = print) -> None:
        self.cfg, self.results, self.folder, self.log = cfg, results, folder, log
        folder.mkdir(parents=True, exist_ok=True)

    def _tandem(self, models: list[Path], parallel: int = 1) -> RunningServer:
        port = free_port()
        return RunningServer(tandem_serve_cmd(models, port, threads=self.cfg.threads, parallel=parallel,
                                              n_ctx=self.cfg.n_ctx, gpu_layers="auto"),
                             port, "/health", self.folder / f"tandem-serve-{port}.log")

    def _body(self, seed: int, n_gen: int | None = None, prompt: str = PROMPT) -> dict:
        """A streamed completion with the engine's own default sampling (``SamplingParams``), so both sides of
        a ratio sample alike: the API's defaults are OpenAI's (no top-k, top-p 1, no min-p), which on Gemma's
        262k vocabulary sort every token, a cost of the settings and not of HTTP."""
        from desktop.engine import SamplingParams

        d = SamplingParams()
        return {"prompt": prompt, "max_tokens": n_gen or self.cfg.n_gen, "temperature": 0.8, "seed": seed,
                "top_k": d.top_k, "top_p": d.top_p, "min_p": d.min_p, "repeat_penalty": d.repeat_penalty}

    def _engine(self, path: Path):
        from desktop.engine import LoadOptions, load_model

        return load_model(path, LoadOptions(threads=self.cfg.threads, n_ctx=self.cfg.n_ctx, gpu_layers="auto"))

    def stream(self, path: Path) -> Figure:
        """Streaming decode through the HTTP API vs the engine's own, ABBA pairs, the same seeds both sides."""
        from bench.engine_figures import consume
        from desktop.engine import SamplingParams

        tag = path.name.removesuffix(".gguf")
        with self._tandem([path]) as server, self._engine(path) as engine, httpx.Client() as client:
            url = f"{server.url}/models/{served_id(path)}/v1/completions"
            stream_completion(client, url, self._body(1, 8))  # warm both
            consume(engine.complete(PROMPT, SamplingParams(max_tokens=8, seed=1)), time.perf_counter())
            app, ref, pairs = [], [], []
            for rep in range(self.cfg.reps):
                seed = 100 + rep
                got = {}
                for side in (("engine", "http") if rep % 2 == 0 else ("http", "engine")):
                    if side == "http":
                        got[side] = stream_completion(client, url, self._body(seed)).decode_tps
                    else:
                        params = SamplingParams(max_tokens=self.cfg.n_gen, temperature=0.8, seed=seed)
                        got[side] = consume(engine.complete(PROMPT, params), time.perf_counter()).client_decode_tps
                if got["http"] and got["engine"]:
                    app.append(got["http"])
                    ref.append(got["engine"])
                    pairs.append(got["http"] / got["engine"])
        return self.results.add(Figure(
            key=f"serve_stream_{tag}", label=f"Streaming decode through the API ({tag})", unit="tok/s",
            value=statistics.median(app) if app else None, reference=statistics.median(ref) if ref else None,
            reference_label="the engine in-process", target=Target("ratio", ">=", 0.97, ">= 97 % of the engine"),
            samples=tuple(app), reference_samples=tuple(ref), pair_ratios=tuple(pairs),
            note=f"{self.cfg.n_gen} tokens, {self.cfg.threads} threads, same seeds both sides"))

    def _aggregate(self, url: str, rep: int) -> tuple[float, float]:
        n = self.cfg.parallel
        streams, wall = concurrent_streams(url, [self._body(1000 * rep + i) for i in range(n)])
        total = sum(s.tokens for s in streams)
        per_client = [s.tokens / s.wall_s for s in streams]
        return total / wall, min(per_client) / (total / wall)

    def parallel(self, path: Path) -> list[Figure]:
        """N clients at once: tandem serve --parallel N vs llama-server --parallel N, alternating servers."""
        from bench.llama_server import ensure_llama_server

        binary = ensure_llama_server(log=self.log).binary
        tag = path.name.removesuffix(".gguf")
        n = self.cfg.parallel
        port = free_port()
        ours, theirs, pairs, shares = [], [], [], []
        with self._tandem([path], parallel=n) as server, RunningServer(
                llama_server_cmd(binary, path, port, threads=self.cfg.threads, n_ctx=self.cfg.n_ctx * n,
                                 parallel=n, gpu_layers=99 if _offload() else 0),
                port, "/health", self.folder / "llama-server.log") as ref:
            urls = {"tandem": f"{server.url}/models/{served_id(path)}/v1/completions",
                    "llama-server": f"{ref.url}/v1/completions"}
            for name in urls:
                self._aggregate(urls[name], 0)  # warm
            for rep in range(1, self.cfg.reps + 1):
                got = {}
                for name in (("llama-server", "tandem") if rep % 2 else ("tandem", "llama-server")):
                    got[name] = self._aggregate(urls[name], rep)
                ours.append(got["tandem"][0])
                theirs.append(got["llama-server"][0])
                pairs.append(got["tandem"][0] / got["llama-server"][0])
                shares.append(got["tandem"][1])
        agg = self.results.add(Figure(
            key=f"serve_parallel_{tag}", label=f"{n} streaming clients, aggregate ({tag})", unit="tok/s",
            value=statistics.median(ours), reference=statistics.median(theirs),
            reference_label=f"llama-server --parallel {n}", target=Target("ratio", ">=", 0.90, ">= 90 % of llama-server"),
            samples=tuple(ours), reference_samples=tuple(theirs), pair_ratios=tuple(pairs),
            note=f"{n} clients × {self.cfg.n_gen} tokens, {self.cfg.threads} threads"))
        fair = self.results.add(Figure(
            key=f"serve_parallel_fair_{tag}", label=f"{n} streaming clients, slowest client's share ({tag})",
            unit="× aggregate", value=min(shares), target=Target("value", ">=", 0.20, ">= 20 % of the aggregate"),
            samples=tuple(shares), note="the slowest client's tok/s over the aggregate tok/s, worst run"))
        return [agg, fair]

    def lmeval(self, path: Path) -> list[Figure]:
        """lm-eval on tandem_mc: local-completions against tandem serve vs gguf against llama_cpp.server."""
        from bench.lmeval_run import run_lm_eval

        tag = path.name.removesuffix(".gguf")
        limit = self.cfg.lmeval_limit
        with self._tandem([path]) as server:
            args = {"base_url": f"{server.url}/models/{served_id(path)}/v1/completions", "model": served_id(path),
                    "num_concurrent": 1, "max_retries": 1}
            ours = run_lm_eval("local-completions", args, ["tandem_mc"], self.folder / f"lmeval-tandem-{tag}",
                               limit=limit, log_samples=False)
        port = free_port()
        with RunningServer(llama_cpp_server_cmd(path, port, threads=self.cfg.threads, n_ctx=2048), port,
                           "/v1/models", self.folder / "llama-cpp-server.log") as ref:
            theirs = run_lm_eval("gguf", {"base_url": ref.url}, ["tandem_mc"], self.folder / f"lmeval-gguf-{tag}",
                                 limit=limit, log_samples=False)
        if not ours.ok:
            self.results.note(f"lm-eval against tandem serve failed: {ours.failure()}")
        if not theirs.ok:
            self.results.note(f"lm-eval's gguf backend against llama_cpp.server failed: {theirs.failure()}")
        speed = self.results.add(Figure(
            key=f"serve_lmeval_{tag}", label=f"lm-eval tandem_mc wall time ({tag})", unit="s",
            value=ours.wall_s if ours.ok else None, reference=theirs.wall_s if theirs.ok else None,
            reference_label="gguf backend vs llama_cpp.server",
            note=f"{limit or 'all'} questions, batch size 1, one request at a time, {self.cfg.threads} threads"))
        speedup = theirs.wall_s / ours.wall_s if ours.ok and theirs.ok else None
        fig = self.results.add(Figure(
            key=f"serve_lmeval_speedup_{tag}", label=f"lm-eval speed-up over llama_cpp.server ({tag})",
            unit="×", value=speedup, target=Target("value", ">=", 5.0, ">= 5×"), note=speed.note))
        acc = ours.metric("tandem_mc", "acc") if ours.ok else None
        ref_acc = reference_accuracy(path, self.cfg.threads, limit)
        gap = abs(acc - ref_acc) if acc is not None and ref_acc is not None else None
        same = self.results.add(Figure(
            key=f"serve_lmeval_acc_{tag}", label=f"lm-eval tandem_mc accuracy minus the direct reference's ({tag})",
            unit="acc", value=gap, target=Target("value", "<=", 1e-9, "= Llama(logits_all=True) on the same ids"),
            note=f"Tandem {acc}, reference {ref_acc}, llama_cpp.server through gguf "
                 f"{theirs.metric('tandem_mc', 'acc') if theirs.ok else 'failed'}"))
        return [speed, fig, same]

    def ttfb(self, path: Path) -> Figure:
        """Time to first byte from an idle server vs the engine's own time to first token (fresh prompts)."""
        from bench.engine_figures import consume
        from desktop.engine import SamplingParams

        tag = path.name.removesuffix(".gguf")
        over, http_s, own_s = [], [], []
        with self._tandem([path]) as server, self._engine(path) as engine:
            url = f"{server.url}/models/{served_id(path)}/v1/completions"
            with httpx.Client() as client:
                stream_completion(client, url, self._body(1, 4))
            for rep in range(self.cfg.ttfb_reps):
                prompt = f"{rep}: {PROMPT}"  # no prefix to reuse beyond the first token
                time.sleep(self.cfg.idle_s)
                with httpx.Client() as client:  # a new connection, as a first request makes
                    http = stream_completion(client, url, self._body(rep, 4, prompt)).ttfb_s
                time.sleep(self.cfg.idle_s)
                own = consume(engine.complete(prompt, SamplingParams(max_tokens=4, seed=rep)),
                              time.perf_counter()).client_ttft_s
                if own is not None:
                    http_s.append(http)
                    own_s.append(own)
                    over.append(1000 * (http - own))
        return self.results.add(Figure(
            key=f"serve_ttfb_{tag}", label=f"Time to first byte over the model's own first token ({tag})",
            unit="ms", value=statistics.median(over) if over else None,
            target=Target("value", "<=", 20.0, "<= 20 ms over the engine"), samples=tuple(over),
            note=f"HTTP first byte median {1000 * statistics.median(http_s):.1f} ms, engine first token "
                 f"{1000 * statistics.median(own_s):.1f} ms" if over else ""))


def reference_accuracy(path: Path, threads: int, limit: int | None) -> float | None:
    """tandem_mc's accuracy from llama-cpp-python's logits read directly, for the ids lm-eval sends (no BOS)."""
    try:
        from tests.real.llama_reference import LlamaReference, choice_accuracy, encode_pair
    except ImportError:  # an installed package without the checkout's tests
        return None
    from desktop.eval import TASKS_DIR

    rows = [json.loads(x) for x in (TASKS_DIR / "tandem_mc.jsonl").read_text("utf-8").splitlines() if x.strip()]
    rows = rows[:limit] if limit else rows
    ref = LlamaReference(path, threads=threads)
    try:
        lls = []
        for r in rows:
            context = f"Question: {r['question']}\nAnswer:"
            row = []
            for choice in r["choices"]:
                ctx, cont = encode_pair(ref.tokenize, context, " " + choice)
                row.append(ref.score(ctx + cont, len(ctx)).loglikelihood)
            lls.append(row)
    finally:
        ref.close()
    return choice_accuracy(lls, [r["choices"] for r in rows], [r["answer"] for r in rows])[0]


def _offload() -> bool:
    from desktop.engine import hardware_report

    return bool(hardware_report().get("gpu_offload_supported"))


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m bench.serve_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 pairs, short streams, 10 questions")
    parser.add_argument("--only", default="", metavar="GROUPS", help=f"comma-separated subset of: {', '.join(GROUPS)}")
    parser.add_argument("--threads", type=int, default=None, help="threads for every server and the engine")
    parser.add_argument("--reps", type=int, default=None, help="ABBA pairs per ratio (default 15)")
    parser.add_argument("--limit", type=int, default=None, help="lm-eval: the first N questions only")
    parser.add_argument("--model", type=Path, action="append", default=None, metavar="PATH",
                        help="bench these GGUF files instead of the real pair (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS_DIR})")
    return parser


def config(args: argparse.Namespace) -> ServeConfig:
    threads = args.threads or min(4, os.cpu_count() or 1)
    cfg = ServeConfig(threads=threads)
    if args.quick:
        cfg = ServeConfig(threads=threads, reps=2, n_gen=16, lmeval_limit=10, ttfb_reps=2, idle_s=0.2, n_ctx=1024)
    if args.reps:
        cfg = ServeConfig(**{**cfg.__dict__, "reps": args.reps, "ttfb_reps": args.reps})
    if args.limit:
        cfg = ServeConfig(**{**cfg.__dict__, "lmeval_limit": args.limit})
    return cfg


def run(args: argparse.Namespace, log: Log = print) -> tuple[Results, Path, Path]:
    groups = set(filter(None, (g.strip() for g in args.only.split(",")))) or set(GROUPS)
    unknown = groups - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown serve group(s): {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    models = list(args.model or real_pair())
    cfg = config(args)
    results = Results(machine=machine_info(), config={"command": "tandem bench --serve" + (" --quick" if args.quick else ""),
                                                      "serve": cfg.__dict__.copy(), "models": [str(m) for m in models]})
    out = args.out or RESULTS_DIR
    bench = ServeBench(cfg, results, out / "serve-work", log)
    show = _show(log)
    for path in models:
        if "stream" in groups:
            show(bench.stream(path))
        if "ttfb" in groups:
            show(bench.ttfb(path))
    last = models[-1]  # one model for the costly comparisons: SmolLM2 in the real pair
    if "parallel" in groups:
        for fig in bench.parallel(last):
            show(fig)
    if "lmeval" in groups:
        for fig in bench.lmeval(last):
            show(fig)
    stem = time.strftime("%Y%m%d-%H%M%S") + "-serve" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(results, out, stem)
    return results, json_path, md_path


def _show(log: Log) -> Callable[[Figure], None]:
    def show(fig: Figure) -> None:
        value = "not measured" if fig.value is None else f"{fig.value:.3g} {fig.unit}"
        ratio = f" ({100 * fig.ratio:.1f} % of {fig.reference_label})" if fig.ratio and fig.unit == "tok/s" else ""
        log(f"{fig.verdict:4} {fig.label}: {value}{ratio}")
    return show


def run_and_print(args: argparse.Namespace) -> int:
    results, json_path, md_path = run(args, log=lambda m: print(f"[serve bench {time.strftime('%H:%M:%S')}] {m}",
                                                               flush=True))
    print()
    print(markdown_table(results))
    for note in results.notes:
        print(f"note: {note}")
    print(f"results: {md_path}\n         {json_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_and_print(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
