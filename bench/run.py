"""Run the benchmark suite: ``python -m bench.run [--quick] [--shape 0.5b|1.5b] [--threads N] [--out DIR]``.

``tandem bench`` calls the same ``main``. The order matters on a small machine: the GUI figures (cold
start, GUI memory) run first, in their own processes, then the engine figures, each interleaved with
its reference. Figures print as they finish; the JSON and Markdown land in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gui_figures  # noqa: E402
from bench.engine_figures import EngineBench, EngineConfig  # noqa: E402
from bench.model import SHAPES, cache_dir, ensure_model  # noqa: E402
from bench.reference import ReferenceUnavailable, ensure_llama_bench, installed_version  # noqa: E402
from bench.report import Figure, Results, markdown_table, write_results  # noqa: E402
from bench.system import NoiseMeter, loadavg, machine_info  # noqa: E402

Log = Callable[[str], None]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
GROUPS = ("gui", "decode", "prefill", "logprobs", "chat", "compare", "memory", "stall", "firstrun")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reps and shorter runs (a few minutes)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="0.5b", help="model shape (default 0.5b)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both Tandem and llama-bench (default: the engine's default)")
    parser.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS_DIR})")
    parser.add_argument("--reps", type=int, default=None, help="pairs per comparison (default 15, logprobs on/off 30; quick 2)")
    parser.add_argument("--no-reference", action="store_true", help="skip llama-bench (app figures only)")
    parser.add_argument("--only", default="", metavar="GROUPS",
                        help=f"comma-separated subset of: {', '.join(GROUPS)}")
    parser.add_argument("--model", type=Path, action="append", default=None, metavar="PATH",
                        help="bench this GGUF file instead of the random-weight shapes (repeatable): metadata "
                             "read time, decode at depth 0 and --depth, prefill, top-5 logprobs cost")
    parser.add_argument("--depth", type=int, default=None, help="the deep decode's context (default 2000)")
    return parser


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def engine_config(args: argparse.Namespace, threads: int) -> EngineConfig:
    cfg = EngineConfig(threads=threads)
    if args.quick:
        cfg = replace(cfg, reps=2, logprobs_reps=4, logprobs_n_gen=32, chat_reps=2, n_gen=32, depth=256,
                      n_prompt=128, chat_user_tokens=20,
                      chat_reply_tokens=8, compare_split_threads=False)
    if args.reps:
        cfg = replace(cfg, reps=args.reps, logprobs_reps=2 * args.reps, chat_reps=min(args.reps, cfg.chat_reps))
    if getattr(args, "depth", None):
        cfg = replace(cfg, depth=args.depth)
    return cfg


MODEL_GROUPS = ("metadata", "decode", "prefill", "logprobs")


def _model_tag(path: Path) -> str:
    return "_" + path.name.removesuffix(".gguf")


def run_models(args: argparse.Namespace, bench: EngineBench, results: Results, groups: set[str], log: Log) -> None:
    """``--model PATH``: the engine figures on the user's own GGUF files, one after the other."""
    from desktop.engine.client import check_model_file

    for path in args.model:
        path = check_model_file(path)  # a missing or broken file: one line, before any figure
        tag = _model_tag(path)
        if "metadata" in groups:
            _show(bench.metadata(path, tag), log)
        if not groups & {"decode", "prefill", "logprobs"}:
            continue
        try:
            handle = bench.load("model", path)
            log(f"loaded {path.name}: {handle.info.backend}, {handle.info.threads} threads, vocabulary "
                f"{handle.info.n_vocab:,}, n_ctx {handle.info.n_ctx}, n_ubatch {handle.info.n_ubatch}")
            bench.warm_up(handle)
            if "decode" in groups:
                _show(bench.decode(path, 0, tag), log)
                _show(bench.decode(path, bench.cfg.depth, tag), log)
            if "prefill" in groups:
                _show(bench.prefill(path, tag), log)
            if "logprobs" in groups:
                _show(bench.logprobs(bench.handles.get("model") or bench.load("model", path), tag), log)
        finally:
            bench.close_all()


def run(args: argparse.Namespace, log: Log = _log) -> tuple[Results, Path, Path]:
    started = time.perf_counter()
    noise = NoiseMeter()
    models = getattr(args, "model", None)
    known = MODEL_GROUPS if models else GROUPS
    groups = set(filter(None, (g.strip() for g in args.only.split(",")))) or set(known)
    unknown = groups - set(known)
    if unknown:
        raise SystemExit(f"unknown group(s): {', '.join(sorted(unknown))}; choose from {', '.join(known)}")

    from desktop.engine import hardware_report

    hw = hardware_report()
    threads = args.threads or hw.get("default_threads") or os.cpu_count() or 1
    machine = machine_info()
    machine.update(llama_cpp_python=hw.get("llama_cpp_python") or installed_version(),
                   backend=hw.get("build_backend"), gpus=[g["name"] for g in hw.get("gpus", [])],
                   gpu_offload=hw.get("gpu_offload_supported"), threads=threads,
                   cpu_features=hw.get("cpu_features"))
    cfg = engine_config(args, threads)
    command = "tandem bench" + (" --quick" if args.quick else "") + f" --shape {args.shape} --threads {threads}"
    results = Results(machine=machine, config={
        "shape": args.shape, "quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M"),
        "command": command, "argv": shlex.join(sys.argv), "engine": cfg.__dict__.copy()})

    if models:
        results.config.update(models=[str(m) for m in models],
                              command="tandem bench" + "".join(f" --model {shlex.quote(str(m))}" for m in models)
                              + (" --quick" if args.quick else "") + f" --threads {threads}")
        ref = _reference(args, results, log, hw)
        cfg = replace(cfg, gpu_layers="auto", ngl=99 if hw.get("gpu_offload_supported") else 0)
        results.config["engine"] = cfg.__dict__.copy()
        run_models(args, EngineBench(cfg, results, ref, log), results, groups, log)
        return _finish(args, results, noise, started, machine,
                       "-".join(m.name.removesuffix(".gguf") for m in models)[:80])

    cache = cache_dir()
    for instruct in (False, True):
        model = ensure_model(args.shape, instruct=instruct, directory=cache)
        how = f"generated in {model.generated_s:.1f} s" if model.generated_s is not None else "cached"
        log(f"model {model.path.name}: {model.size_bytes / 1e6:.0f} MB, {how}")
    base = ensure_model(args.shape, instruct=False, directory=cache).path
    instruct_model = ensure_model(args.shape, instruct=True, directory=cache).path

    ref = _reference(args, results, log, hw)
    offload = bool(hw.get("gpu_offload_supported"))
    cfg = replace(cfg, gpu_layers="auto", ngl=99 if offload else 0)
    results.config["engine"] = cfg.__dict__.copy()

    if "gui" in groups:
        gui_figures.cold_start_and_memory(results, reps=2 if args.quick else 5, log=log)

    bench = EngineBench(cfg, results, ref, log)
    try:
        if groups & {"decode", "prefill", "logprobs", "memory", "compare"}:
            handle = bench.load("base", base)
            log(f"loaded {base.name}: {handle.info.backend}, {handle.info.threads} threads, "
                f"gpu layers {handle.info.gpu_layers}, n_ctx {handle.info.n_ctx}, {handle.info.load_s:.2f} s")
            results.config["app_load"] = {"backend": handle.info.backend, "gpu_layers": handle.info.gpu_layers,
                                          "n_ctx": handle.info.n_ctx, "threads": handle.info.threads}
            bench.warm_up(handle)
            if "decode" in groups:
                _show(bench.decode(base, 0), log)
                _show(bench.decode(base, cfg.depth), log)
            if "prefill" in groups:
                _show(bench.prefill(base), log)
            if "logprobs" in groups:
                _show(bench.logprobs(handle), log)
            if "memory" in groups:
                _show(bench.worker_memory(base), log)
        if groups & {"chat", "compare"}:
            other = bench.load("instruct", instruct_model)
            bench.warm_up(other)
            if "chat" in groups:
                _show(bench.chat_ttft(other, instruct_model), log)
            if "compare" in groups:
                _show(bench.concurrent(bench.load("base", base) if "base" not in bench.handles
                                       else bench.handles["base"], other,
                                       f"Compare: 2 models × {threads} threads", "compare"), log)
                if cfg.compare_split_threads and threads >= 2:
                    bench.close_all()
                    half = max(1, threads // 2)
                    a = bench.load("base_half", base, threads=half)
                    b = bench.load("instruct_half", instruct_model, threads=half)
                    bench.warm_up(a)
                    bench.warm_up(b)
                    _show(bench.concurrent(a, b, f"Compare: 2 models × {half} threads", "compare_split"), log)
    finally:
        bench.close_all()

    if "stall" in groups:
        _show(gui_figures.gui_stall(results, base, instruct_model, threads=max(1, threads // 2),
                                    seconds=8 if args.quick else 20, log=log), log)

    if "firstrun" in groups:  # the real pair, where scripts/real_models.sh has fetched it
        real = Path(os.environ.get("TANDEM_REAL_MODELS") or Path.home() / ".cache" / "tandem" / "real-models")
        pair = (real / "gemma-3-270m-q4_k_m.gguf", real / "SmolLM2-135M-Instruct.Q4_1.gguf")
        if all(p.is_file() for p in pair):
            gui_figures.first_run_stall(results, *pair, threads=max(1, threads // 2), log=log)
            for fig in results.figures[-2:]:
                _show(fig, log)
        else:
            results.note(f"First-run stall not measured: run scripts/real_models.sh first (no {pair[0].name} "
                         f"and {pair[1].name} in {real}).")

    return _finish(args, results, noise, started, machine, args.shape)


def _reference(args: argparse.Namespace, results: Results, log: Log, hw: dict):
    if args.no_reference:
        results.note("llama-bench comparison skipped (--no-reference).")
        return None
    try:
        ref = ensure_llama_bench(cache_dir(), log)
    except ReferenceUnavailable as exc:
        results.note(f"No llama-bench comparison: {exc}")
        log(f"no reference: {exc}")
        return None
    how = f"built in {ref.build_s:.0f} s" if ref.build_s is not None else "cached"
    log(f"reference: {ref.binary} ({how}); GPU devices: {', '.join(ref.gpu_devices) or 'none'}")
    results.config["reference"] = {"binary": str(ref.binary), "version": ref.version,
                                   "cmake_flags": list(ref.cmake_flags), "build": ref.build_info,
                                   "gpu_devices": list(ref.gpu_devices)}
    offload = bool(hw.get("gpu_offload_supported"))
    if ref.offload != offload:
        results.note(f"The app's llama.cpp build {'can' if offload else 'cannot'} offload to a GPU but the "
                     f"reference build {'can' if ref.offload else 'cannot'}: the two are not comparable.")
    return ref


def _finish(args, results: Results, noise: NoiseMeter, started: float, machine: dict, what: str):
    elapsed = time.perf_counter() - started
    foreign = noise.foreign_cpu_share(elapsed)
    machine["loadavg_end"] = loadavg()
    machine["elapsed_s"] = round(elapsed, 1)
    if foreign is not None:
        machine["other_processes_cores"] = round(foreign, 2)
        if foreign > 0.1:
            results.note(f"Noise: other processes kept {foreign:.2f} cores busy on average during the run "
                         f"({os.cpu_count()} cores in all); treat small gaps with care.")
    stem = time.strftime("%Y%m%d-%H%M%S") + f"-{what}" + ("-quick" if args.quick else "")
    json_path, md_path = write_results(results, args.out or RESULTS_DIR, stem)
    return results, json_path, md_path


def _show(fig: Figure, log: Log) -> None:
    ratio = f" ({100 * fig.ratio:.1f} % of {fig.reference_label})" if fig.ratio and fig.unit == "tok/s" else (
        f" ({fig.ratio:.2f}× {fig.reference_label})" if fig.ratio else "")
    value = "not measured" if fig.value is None else f"{fig.value:.3g} {fig.unit}"
    log(f"{fig.verdict:4} {fig.label}: {value}{ratio}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_and_print(args)


def run_and_print(args: argparse.Namespace) -> int:
    if getattr(args, "serve", False):  # `tandem bench --serve`: its own suite, opt-in (it needs the real models)
        from bench import serve_bench

        return serve_bench.run_and_print(args)
    results, json_path, md_path = run(args)
    print()
    print(markdown_table(results))
    for note in results.notes:
        print(f"note: {note}")
    summary = results.as_json()["summary"]
    print(f"\n{summary['pass']} PASS, {summary['fail']} FAIL, {summary['not_measured']} not measured")
    print(f"results: {md_path}\n         {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
