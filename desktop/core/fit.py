"""Will this model fit? Weights + KV cache at the chosen context + overhead, against free memory.

The estimate is deliberately simple and explained in one line, so a person can check it: the weights
take their file size; the KV cache takes 2 (K and V) x 2 bytes (f16) x layers x context x KV width, where
the KV width is head_dim x KV heads (n_embd x n_head_kv / n_head unless the file says head_dim); the
overhead is the runtime, llama.cpp's compute buffer (attention scores for a 512-token micro-batch over
the whole context dominate it) and a margin on the weights. "tight" means it should load but the machine will have little left; "won't fit" means loading
is likely to swap heavily or fail.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30
_BASE_OVERHEAD = 160 * MiB  # runtime, graph, scratch
_WEIGHT_MARGIN = 0.05  # mmap bookkeeping, alignment, tensors llama.cpp keeps in f32
_UBATCH = 512  # llama.cpp's default micro-batch: KQ scores = n_ctx x ubatch x n_head x 4 bytes
_KQ_SHARE = 0.5  # flash attention (the default where supported) needs far less; count half
_FITS = 0.8  # fraction of the free memory a "fits" verdict may use

FITS, TIGHT, WONT_FIT = "fits", "tight", "won't fit"


@dataclass(frozen=True)
class FitEstimate:
    verdict: str  # "fits" | "tight" | "won't fit"
    needed_bytes: int
    weights_bytes: int
    kv_bytes: int
    overhead_bytes: int
    available_bytes: int | None  # free RAM (+ free VRAM); None when unknown
    n_ctx: int
    explanation: str
    # The largest context (a multiple of 1024, at least 512) that would still "fit", when lowering the
    # context is what would make a "tight" or "won't fit" model fit; else None.
    suggested_ctx: int | None = None


def kv_cache_bytes(n_layer: int, n_ctx: int, n_embd: int, n_head: int, n_head_kv: int,
                   head_dim: int | None = None) -> int:
    """f16 K and V for every layer: 2 x 2 bytes x n_layer x n_ctx x (head_dim x n_head_kv)."""
    if head_dim is None:
        width = n_embd * n_head_kv // max(n_head, 1)
    else:
        width = head_dim * n_head_kv
    return 2 * 2 * n_layer * n_ctx * width


def overhead_bytes(model_bytes: int, n_ctx: int, n_head: int, n_models: int = 1) -> int:
    compute = int(n_ctx * _UBATCH * max(n_head, 1) * 4 * _KQ_SHARE)
    return n_models * (_BASE_OVERHEAD + compute) + int(model_bytes * _WEIGHT_MARGIN)


def human_bytes(n: int | float) -> str:
    """1.4 GB / 350 MB (binary units, as most apps label them)."""
    n = float(n)
    if n >= GiB:
        return f"{n / GiB:.1f} GB"
    if n >= MiB:
        return f"{n / MiB:.0f} MB"
    return f"{n / 1024:.0f} KB"


def estimate_fit(model_bytes: int, n_layer: int, n_embd: int, n_head: int, n_head_kv: int, n_ctx: int,
                 free_ram: int | None, free_vram: int | None = None, *, head_dim: int | None = None,
                 n_models: int = 1) -> FitEstimate:
    """Estimate memory for a model at ``n_ctx`` and compare with free RAM (+ free VRAM when offloading).

    ``n_models`` > 1 counts that many models of this shape loaded at once (Compare runs a base and an
    instruct model side by side): ``model_bytes`` is then their total, and each gets its KV cache.
    """
    n_head_kv = n_head_kv or n_head
    kv = n_models * kv_cache_bytes(n_layer, n_ctx, n_embd, n_head, n_head_kv, head_dim)
    over = overhead_bytes(model_bytes, n_ctx, n_head, n_models)
    needed = model_bytes + kv + over
    parts = (f"{human_bytes(model_bytes)} weights + {human_bytes(kv)} KV cache for {n_ctx:,} tokens + "
             f"{human_bytes(over)} overhead")
    if free_ram is None:
        return FitEstimate(TIGHT, needed, model_bytes, kv, over, None, n_ctx,
                           f"Needs about {human_bytes(needed)} ({parts}); free memory could not be read.")
    available = free_ram + (free_vram or 0)
    where = f"{human_bytes(free_ram)} RAM" + (f" + {human_bytes(free_vram)} VRAM" if free_vram else "")
    if needed <= available * _FITS:
        verdict, tail = FITS, f"{where} free"
    elif needed <= available:
        verdict, tail = TIGHT, f"only {where} free; little room is left for other programs"
    else:
        verdict, tail = WONT_FIT, f"only {where} free"
    suggested = None
    if verdict != FITS:
        per_token = n_models * (kv_cache_bytes(n_layer, 1, n_embd, n_head, n_head_kv, head_dim)
                                + int(_UBATCH * max(n_head, 1) * 4 * _KQ_SHARE))
        room = int(available * _FITS) - model_bytes - overhead_bytes(model_bytes, 0, n_head, n_models)
        if per_token > 0 and room > 0:
            ctx = min(n_ctx - 1, room // per_token) // 1024 * 1024
            if ctx >= 512:
                suggested = ctx
    explanation = f"Needs about {human_bytes(needed)} ({parts}); {tail}."
    if suggested:
        explanation += f" A context of {suggested:,} tokens would fit."
    return FitEstimate(verdict, needed, model_bytes, kv, over, available, n_ctx, explanation, suggested)


def estimate_for_metadata(meta, n_ctx: int | None = None, free_ram: int | None = None,
                          free_vram: int | None = None) -> FitEstimate:
    """Fit of a file already read by ``gguf_meta.read_metadata`` (free RAM read now when not given)."""
    if free_ram is None:
        from desktop.core.sysmem import free_ram as read_free_ram

        free_ram = read_free_ram()
    n_ctx = n_ctx or min(meta.context_length or 4096, 4096)
    return estimate_fit(meta.file_size, meta.n_layer or 0, meta.n_embd or 0, meta.n_head or 1,
                        meta.n_head_kv or meta.n_head or 1, n_ctx, free_ram, free_vram,
                        head_dim=meta.head_dim)
