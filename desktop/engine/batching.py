"""Slots: several generations decoded together in one ``llama_decode``, as llama-server's ``--parallel N``.

A worker loaded with ``LoadOptions.n_seq`` = N > 1 runs ``serve_slots`` instead of ``worker.serve``.
Sequence ids: the context holds N + 1 sequences of ``n_ctx`` cells each (not kv_unified: see
``runner._create_context``). Sequence 0 stays the ``Runner``'s own for the requests answered whole (score,
tokenize, render, ...: they use ``llama_batch_get_one``, ``_reuse_prefix`` and ``Runner.tokens`` exactly as
with one slot), and slot i decodes on sequence i, 1..N, keeping its last prompt and reply cached so a
request that repeats a prefix (the same context sent for each answer of a multiple-choice question)
evaluates only the rest.

Each step: read every message waiting on the pipe (blocking only when nothing runs), admit queued
streaming requests into free slots, build ONE batch: the next token of every decoding slot, then prefill
chunks of admitted slots, oldest first, within a budget of about ``STEP_TARGET_S`` of work at the speed
measured so far (a long prompt can't stall the others for long, and a ``Cancel`` is read within a step);
call ``llama_decode`` once; sample each slot that asked for logits from its own batch position, with its
own ``sampling.Sampler`` (its seed, penalties), ``generation.Output`` (stop strings, logprobs, emit_eog)
and ``TokenSender``. Every message leaves wrapped in ``Tagged(rid, ...)``.

llama.cpp splits a non-unified batch into one ubatch (one pass over the weights) per run of consecutive
sequence ids, so the batch is written in sequence order and a request takes the lowest free slot, unless
another free slot's cache shares a longer prefix with its prompt. A request's ``threads`` is ignored here:
one batch runs for all slots, with the load-time threads.
"""

from __future__ import annotations

import ctypes
import itertools
import secrets
import time
import traceback
from collections import deque

from desktop.core.errors import ContextOverflow, EngineError, TandemError
from desktop.engine.generation import Output, TokenSender
from desktop.engine.messages import STREAMING, Chat, Complete, Final, Tagged
from desktop.engine.native import L, np
from desktop.engine.sampling import Sampler
from desktop.engine.types import FinalEvent, SamplingParams

STEP_TARGET_S = 0.08  # a step's work when slots prefill: bounds the others' stall and a cancel's delay
FIRST_CHUNK = 32  # prefill tokens in the first step, before any speed is measured
MIN_CHUNK = 16


def prompt_tokens(runner, msg) -> list[int]:
    """The prompt of a streaming request as token ids (a text prompt gets BOS as llama.cpp adds it)."""
    if isinstance(msg, Complete):
        return runner.completion_tokens(msg.prompt)
    if isinstance(msg, Chat):
        return runner.chat_tokens(msg.messages, msg.system)
    tokens = runner.check_ids(list(msg.tokens))
    if not tokens:
        raise EngineError("The prompt is empty: give at least one token id.")
    return tokens


class Batch:
    """A ``llama_batch`` over numpy arrays this class owns: one token per entry, each on one sequence."""

    def __init__(self, capacity: int, n_seq_max: int):
        self.capacity, self.n = capacity, 0
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        self.seq_cells = np.arange(n_seq_max, dtype=np.int32)  # seq_id[i] points at the cell of its sequence
        self.seq_id = np.zeros(capacity, dtype=np.uintp)
        pointer = ctypes.POINTER
        b = self.struct = L.llama_batch()  # embd stays NULL: tokens, not embeddings
        b.token = self.token.ctypes.data_as(pointer(L.llama_token))
        b.pos = self.pos.ctypes.data_as(pointer(L.llama_pos))
        b.n_seq_id = self.n_seq_id.ctypes.data_as(pointer(ctypes.c_int32))
        b.seq_id = ctypes.cast(self.seq_id.ctypes.data, pointer(pointer(L.llama_seq_id)))
        b.logits = self.logits.ctypes.data_as(pointer(ctypes.c_int8))

    def add(self, tokens: list[int], pos: int, seq: int, logits_last: bool) -> int:
        """Append tokens at positions pos.. of ``seq``; returns the batch index of the last one."""
        n, k = self.n, len(tokens)
        self.token[n:n + k] = tokens
        self.pos[n:n + k] = np.arange(pos, pos + k, dtype=np.int32)
        self.seq_id[n:n + k] = self.seq_cells.ctypes.data + 4 * seq
        self.logits[n:n + k] = 0
        self.logits[n + k - 1] = logits_last
        self.n = n + k
        return n + k - 1

    def decode(self, ctx) -> int:
        self.struct.n_tokens = self.n
        return L.llama_decode(ctx, self.struct)


class Job:
    """One streaming request in a slot: its prompt, how much of it is cached, its sampler and output."""

    __slots__ = ("rid", "prompt", "done", "params", "sampler", "sender", "out", "next_token", "stats",
                 "t_start", "in_llama", "order")

    def __init__(self, runner, rid: int, prompt: list[int], p: SamplingParams, send, order: int):
        self.rid, self.prompt, self.params, self.order = rid, prompt, p, order
        self.t_start = time.perf_counter()
        seed = p.seed if p.seed is not None else secrets.randbelow(2**32 - 1)
        self.sampler: Sampler = runner._make_sampler(p, seed, prompt)
        self.sender = TokenSender(lambda msg: send(Tagged(rid, msg)))
        self.out = Output(runner, p, self.sender)
        self.done = 0  # prompt tokens in the slot's cache
        self.next_token: int | None = None  # sampled, to be evaluated in the next step
        self.stats: dict = dict(prompt_tokens=len(prompt), seed=seed)
        self.in_llama = 0.0


class Slot:
    __slots__ = ("seq", "cached", "job")

    def __init__(self, seq: int):
        self.seq = seq
        self.cached: list[int] = []  # what sequence ``seq`` holds, position by position
        self.job: Job | None = None


class Scheduler:
    """The slots of one worker and the requests waiting for one (see the module's docstring)."""

    def __init__(self, runner, send):
        self.runner, self.send = runner, send
        self.slots = [Slot(seq) for seq in range(1, runner.n_seq_max)]
        self.queue: deque[tuple[int, object]] = deque()
        self.batch = Batch(runner.n_batch, runner.n_seq_max)
        self.tps: float | None = None  # tokens per second of steps that prefilled
        self._order = itertools.count()

    def busy(self) -> bool:
        return bool(self.queue) or any(s.job is not None for s in self.slots)

    def submit(self, rid: int, msg) -> None:
        self.queue.append((rid, msg))

    def cancel(self, rid: int) -> None:
        for i, (queued, _msg) in enumerate(self.queue):
            if queued == rid:
                del self.queue[i]
                self.send(Tagged(rid, Final(FinalEvent("cancelled", ""))))
                return
        for slot in self.slots:
            if slot.job is not None and slot.job.rid == rid:
                self._end(slot, "cancelled")
                return

    def cancel_all(self) -> None:
        while self.queue:
            self.cancel(self.queue[0][0])
        for slot in self.slots:
            if slot.job is not None:
                self._end(slot, "cancelled")

    def fail_all(self, error: TandemError) -> None:
        """After a bug in a step: every running request ends with the error, and its slot starts afresh."""
        for slot in self.slots:
            if slot.job is not None:
                self._end(slot, "error", error)
                self.runner._clear_seq(slot.seq)
                slot.cached.clear()

    # ----- admission -----------------------------------------------------------------------------
    def admit(self) -> None:
        free = [s for s in self.slots if s.job is None]
        while self.queue and free:
            rid, msg = self.queue.popleft()
            try:
                if not isinstance(msg, STREAMING):
                    raise EngineError(f"unknown request {msg!r}")
                prompt = prompt_tokens(self.runner, msg)
                msg.params.validate()
                self.runner.check_fits(len(prompt))
                slot = max(free, key=lambda s: (_common(s.cached, prompt), -s.seq))
                slot.job = Job(self.runner, rid, prompt, msg.params, self.send, next(self._order))
            except TandemError as exc:
                self._fail(rid, exc)
                continue
            except ValueError as exc:  # SamplingParams.validate
                self._fail(rid, EngineError(str(exc)))
                continue
            except Exception as exc:  # a bug of ours: report it, keep the others running
                traceback.print_exc()
                self._fail(rid, EngineError(f"Internal engine error: {type(exc).__name__}: {exc}"))
                continue
            free.remove(slot)
            job = slot.job
            common = self.runner._reuse_prefix(prompt, len(prompt) - 1, slot.cached, slot.seq)
            job.done = common
            job.stats["prompt_eval_tokens"] = len(prompt) - common

    def _fail(self, rid: int, error: TandemError) -> None:
        self.send(Tagged(rid, Final(FinalEvent("error", "", error=error))))

    # ----- one step --------------------------------------------------------------------------------
    def _budget(self, n_decoding: int) -> int:
        room = self.batch.capacity - n_decoding
        want = FIRST_CHUNK if self.tps is None else int(self.tps * STEP_TARGET_S) - n_decoding
        return max(1, min(room, max(MIN_CHUNK, want)))

    def step(self) -> None:
        """One ``llama_decode`` for every running slot, then each slot's next token."""
        active = [s for s in self.slots if s.job is not None]
        if not active:
            return
        entries: list[tuple[Slot, list[int], bool]] = []
        decoding = [s for s in active if s.job.next_token is not None]
        for slot in decoding:
            entries.append((slot, [slot.job.next_token], True))
        budget = self._budget(len(decoding))
        for slot in sorted((s for s in active if s.job.next_token is None), key=lambda s: s.job.order):
            if budget <= 0:
                break
            job = slot.job
            chunk = job.prompt[job.done:job.done + budget]
            entries.append((slot, chunk, job.done + len(chunk) == len(job.prompt)))
            budget -= len(chunk)
        batch = self.batch
        batch.n = 0
        entries.sort(key=lambda e: e[0].seq)  # consecutive sequence ids share one ubatch
        at = [batch.add(toks, len(slot.cached), slot.seq, want) for slot, toks, want in entries]
        t0 = time.perf_counter()
        rc = batch.decode(self.runner.ctx)
        dt = time.perf_counter() - t0
        if rc != 0:
            self._decode_failed(entries, rc)
            return
        if len(decoding) < len(entries):
            tps = batch.n / dt if dt > 0 else None
            if tps:
                self.tps = tps if self.tps is None else 0.5 * (self.tps + tps)
        for (slot, toks, want), idx in zip(entries, at, strict=True):
            job = slot.job
            slot.cached.extend(toks)
            if job.next_token is not None:
                job.in_llama += dt
            else:
                job.done += len(toks)
                if want:
                    prefill_s = time.perf_counter() - job.t_start
                    job.stats["prefill_s"] = prefill_s
                    job.stats["prefill_tps"] = job.stats["prompt_eval_tokens"] / prefill_s if prefill_s > 0 else 0.0
            if want:
                self._sample(slot, idx)

    def _sample(self, slot: Slot, idx: int) -> None:
        job = slot.job
        out = job.out
        if out.n_generated >= job.params.max_tokens or len(slot.cached) >= self.runner.n_ctx:
            self._end(slot, "length")
            return
        out.idx = idx
        token = job.sampler.sample(self.runner.ctx, idx)
        finish = out.take(token, job.sampler)
        if finish is not None:
            self._end(slot, finish)
        elif out.n_generated >= job.params.max_tokens:
            self._end(slot, "length")  # no need to evaluate a token nothing will follow
        else:
            job.next_token = token

    def _decode_failed(self, entries, rc: int) -> None:
        """Trim each slot's cache back to what it is known to hold, and end the requests of the batch."""
        runner = self.runner
        for slot, _toks, _want in entries:
            if not L.llama_memory_seq_rm(runner.memory, slot.seq, len(slot.cached), -1):
                runner._clear_seq(slot.seq)
                slot.cached.clear()
            if slot.job is None:
                continue
            if rc == 1:
                error = ContextOverflow(f"The context is full ({runner.n_ctx:,} tokens).",
                                        len(slot.cached) + 1, runner.n_ctx)
            else:
                error = EngineError(f"llama.cpp failed to evaluate the batch (code {rc}).")
            self._end(slot, "error", error)

    def _end(self, slot: Slot, finish: str, error: TandemError | None = None) -> None:
        job, slot.job = slot.job, None
        try:
            job.out.close()
            job.stats["decode_llama_s"] = job.in_llama
            final = self.runner._final(finish, job.out.emitted, job.stats, job.t_start, job.out.t_first,
                                       job.out.n_generated)
            if error is not None:
                final = FinalEvent("error", final.text, final.stats, error)
        finally:
            job.sampler.free()
        job.sender.flush()  # every token before the final event
        self.send(Tagged(job.rid, Final(final)))


def _common(cached: list[int], tokens: list[int]) -> int:
    n = 0
    for a, b in zip(cached, tokens):  # noqa: B905 (lengths differ by design)
        if a != b:
            break
        n += 1
    return n


def serve_slots(conn, runner, answer) -> None:
    """The worker's loop with slots: ``answer(msg, send)`` answers a non-streaming request whole (between
    steps, on sequence 0) and returns False when the pipe broke. Ends on ``Close`` or a closed pipe."""
    import pickle

    from desktop.engine.messages import Cancel, Close, Done

    send_bytes, dumps, protocol = conn.send_bytes, pickle.dumps, pickle.HIGHEST_PROTOCOL

    def send(msg) -> None:
        send_bytes(dumps(msg, protocol))

    runner.cancel_flag[0] = 0  # llama.cpp's abort callback would stop every slot: never set here
    sched = Scheduler(runner, send)
    try:
        while True:
            while not sched.busy() or conn.poll(0):  # block for a message only when nothing runs
                envelope = conn.recv()
                rid, msg = (envelope.rid, envelope.msg) if isinstance(envelope, Tagged) else (0, envelope)
                if isinstance(msg, Close):
                    sched.cancel_all()
                    runner.close()
                    send(Tagged(rid, Done(None)))
                    return
                if isinstance(msg, Cancel):
                    sched.cancel(rid)
                elif isinstance(msg, STREAMING):
                    sched.submit(rid, msg)
                elif not answer(msg, lambda reply, rid=rid: send(Tagged(rid, reply))):
                    return
            sched.admit()
            try:
                sched.step()
            except (BrokenPipeError, EOFError, OSError):
                raise
            except Exception as exc:  # a bug of ours: end the running requests, keep the model loaded
                traceback.print_exc()
                sched.fail_all(EngineError(f"Internal engine error: {type(exc).__name__}: {exc}"))
    except (BrokenPipeError, EOFError, OSError):
        return
