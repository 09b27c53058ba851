"""A fast, defensive GGUF header reader: what the library needs to show a model, in milliseconds.

``gguf.GGUFReader`` memory-maps the file and builds numpy views of every array (18 s for a 128k vocab);
we only need a few scalars and the chat template. So this reader walks the header sequentially in large
chunks, skips arrays without decoding them, and then reads the tensor infos to prove that every tensor's data
lies inside the file: a truncated download must read as broken, not as a model that crashes on load.

The byte-level reading (chunked, bounds-checked, and the numpy walk over big string arrays such as the
vocabulary) lives in ``gguf_reader``; this module decides what the header means.

Every problem is a ``ModelFileError`` with a one-line reason (bad magic, unsupported version, absurd
counts, truncation with the byte offset); no other exception type escapes ``read_metadata``.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from desktop.core.errors import ModelFileError
from desktop.core.gguf_reader import MAX_STRING_LEN, Reader, token_text

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

_MAX_TENSORS = 1 << 20
_MAX_KV = 1 << 20
_MAX_KEY_LEN = 1 << 16
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_ARRAY_DEPTH = 3
_SMALL_ARRAY = 256  # numeric arrays up to this length are kept (per-layer head counts, ...)

# GGUF value types.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL = range(8)
_STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(8, 13)
_SCALARS: dict[int, struct.Struct] = {
    _UINT8: struct.Struct("<B"), _INT8: struct.Struct("<b"), _UINT16: struct.Struct("<H"),
    _INT16: struct.Struct("<h"), _UINT32: struct.Struct("<I"), _INT32: struct.Struct("<i"),
    _FLOAT32: struct.Struct("<f"), _BOOL: struct.Struct("<?"), _UINT64: struct.Struct("<Q"),
    _INT64: struct.Struct("<q"), _FLOAT64: struct.Struct("<d"),
}

# ggml tensor types: id -> (name, elements per block, bytes per block). Checked against gguf's own
# table by the tests; a type unknown here is tolerated (only its start offset is bounds-checked).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}

# general.file_type (llama_ftype) -> the label people know from file names.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}

# Short strings worth keeping; long ones (licence texts, templates other than the default) are skipped.
_KEEP_STRING_MAX = 4096
_CHAT_TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass(frozen=True)
class GGUFMetadata:
    """What Tandem shows and needs about a GGUF file without loading it."""

    path: str
    name: str
    architecture: str
    parameters: int
    quantization: str
    file_type: int | None
    context_length: int | None
    has_chat_template: bool
    chat_template: str | None
    file_size: int
    kind: str  # "base" | "instruct"
    n_layer: int | None
    n_embd: int | None
    n_head: int | None
    n_head_kv: int | None
    head_dim: int | None  # attention.key_length when present (Qwen3, Gemma), else n_embd // n_head
    vocab_size: int | None
    bos_token: str | None = None
    eos_token: str | None = None
    basename: str | None = None
    size_label: str | None = None
    finetune: str | None = None
    license: str | None = None
    version: int = 3
    tensor_count: int = 0
    # Scalar and short string key/values, for a "details" view. Not part of equality.
    kv: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape of ``tandem models info``."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "kind": self.kind,
            "has_chat_template": self.has_chat_template,
            "file_size": self.file_size,
        }


# --- kind from names ----------------------------------------------------------------------------------

_INSTRUCT_HINT = re.compile(r"(?:^|[-_. /])(instruct|it|chat|sft|dpo|rlhf|assistant)(?=$|[-_. /])", re.I)
_BASE_HINT = re.compile(r"(?:^|[-_. /])(base|pt|pretrain|pretrained)(?=$|[-_. /])", re.I)


def name_hint(*names: str | None) -> str | None:
    """"instruct", "base" or None from names like "gemma-3-1b-it" or "Qwen3-0.6B-Base"."""
    text = " ".join(n for n in names if n)
    if _INSTRUCT_HINT.search(text):
        return "instruct"
    if _BASE_HINT.search(text):
        return "base"
    return None


def classify_kind(has_chat_template: bool, *names: str | None) -> str:
    """Instruct when the file carries a chat template, else base; names only break the ambiguous cases.

    Ambiguous: a base checkpoint whose tokenizer ships a template anyway (Qwen base models do), named
    "...-Base"; or an old instruct conversion without a template, named "...-Instruct".
    """
    hint = name_hint(*names)
    if has_chat_template:
        return "base" if hint == "base" else "instruct"
    return "instruct" if hint == "instruct" else "base"


# --- the reader ---------------------------------------------------------------------------------------


def _read_value(r: Reader, vtype: int, key: str, depth: int = 0) -> Any:
    """Read or skip one value. Arrays come back as ("array", elem_type, count) unless small and numeric."""
    st = _SCALARS.get(vtype)
    if st is not None:
        return r.unpack(st, f"value of {key}")
    if vtype == _STRING:
        n = r.u64(f"length of {key}")
        if n > MAX_STRING_LEN:
            raise ModelFileError(f"corrupt: the string value of {key} claims {n} bytes")
        if n <= _KEEP_STRING_MAX or key == _CHAT_TEMPLATE_KEY:
            r.need(n, f"value of {key}")
            raw = r.buf[r.pos:r.pos + n]
            r.pos += n
            return raw.decode("utf-8", errors="replace")
        r.skip(n, f"value of {key}")
        return None
    if vtype == _ARRAY:
        if depth >= _MAX_ARRAY_DEPTH:
            raise ModelFileError(f"corrupt: arrays nested too deeply in {key}")
        elem = r.u32(f"array type of {key}")
        count = r.u64(f"array length of {key}")
        remaining = r.size - r.offset()
        est = _SCALARS[elem].size if elem in _SCALARS else 8
        if elem not in _SCALARS and elem not in (_STRING, _ARRAY):
            raise ModelFileError(f"corrupt: unknown array element type {elem} in {key}")
        if count * est > remaining:
            raise ModelFileError(
                f"truncated: array {key} claims {count} elements but only {remaining} bytes remain"
            )
        if elem in _SCALARS:
            st = _SCALARS[elem]
            if count <= _SMALL_ARRAY:
                r.need(st.size * count, f"array {key}")
                values = struct.unpack_from(f"<{count}{st.format[-1]}", r.buf, r.pos)
                r.pos += st.size * count
                return tuple(values)
            r.skip(st.size * count, f"array {key}")
        elif elem == _STRING:
            r.skip_strings(count, key)
        else:
            for i in range(count):
                _read_value(r, _ARRAY, f"{key}[{i}]", depth + 1)
        return ("array", elem, count)
    raise ModelFileError(f"corrupt: unknown value type {vtype} for key {key}")


def _int(value: Any) -> int | None:
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return max(value)  # per-layer values (some architectures): the largest is what memory needs
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def read_metadata(path: str | os.PathLike[str]) -> GGUFMetadata:
    """Read a GGUF file's header. Raises ModelFileError (one line) for anything that is not a usable GGUF."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return _parse(fh, size, path)
    except ModelFileError:
        raise
    except IsADirectoryError:
        raise ModelFileError(f"{path.name} is a folder, not a GGUF file") from None
    except FileNotFoundError:
        raise ModelFileError(f"no such file: {path}") from None
    except PermissionError:
        raise ModelFileError(f"cannot read {path.name}: permission denied") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:  # a parser bug must not escape
        raise ModelFileError(f"corrupt GGUF header in {path.name} ({type(exc).__name__})") from None


def _parse(fh: BinaryIO, size: int, path: Path) -> GGUFMetadata:
    r = Reader(fh, size)
    if size < 4:
        raise ModelFileError(f"not a GGUF file: {path.name} is only {size} bytes")
    r.need(4, "magic")
    magic = r.buf[:4]
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"not a GGUF file: {path.name} starts with {magic!r}, not b'GGUF'")
    r.pos = 4
    version = r.u32("version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and (version >> 24) in SUPPORTED_VERSIONS:
            raise ModelFileError("unsupported GGUF: big-endian files are not supported")
        raise ModelFileError(f"unsupported GGUF version {version} (supported: 2 and 3)")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("key/value count")
    if n_tensors > _MAX_TENSORS:
        raise ModelFileError(f"corrupt: the header claims {n_tensors} tensors")
    if n_kv > _MAX_KV:
        raise ModelFileError(f"corrupt: the header claims {n_kv} metadata entries")
    if n_kv * 13 + n_tensors * 33 > size:
        raise ModelFileError(
            f"truncated: {n_kv} metadata entries and {n_tensors} tensors cannot fit in {size} bytes"
        )

    kv: dict[str, Any] = {}
    chat_template: str | None = None
    tokens_at: tuple[list[int], int] | None = None  # (marks into the tokens array, count)
    for i in range(n_kv):
        key = r.string(f"key #{i}", limit=_MAX_KEY_LEN)
        vtype = r.u32(f"type of {key}")
        if key == "tokenizer.ggml.tokens" and vtype == _ARRAY:
            elem = r.u32("array type of tokenizer.ggml.tokens")
            count = r.u64("array length of tokenizer.ggml.tokens")
            if elem != _STRING:
                raise ModelFileError("corrupt: tokenizer.ggml.tokens is not a string array")
            if count * 8 > size - r.offset():
                raise ModelFileError(f"truncated: the vocabulary claims {count} tokens")
            marks: list[int] = []
            r.skip_strings(count, key, marks, distinct=True)
            # llama.cpp renames empty tokens ("[EMPTY_i]") but aborts on any other repeated token.
            duplicates = r.duplicates
            if duplicates > 0:
                raise ModelFileError(
                    f"corrupt: the vocabulary has {duplicates} duplicate token(s); llama.cpp can't load it")
            tokens_at = (marks, count)
            kv[key] = ("array", _STRING, count)
            continue
        value = _read_value(r, vtype, key)
        if key == _CHAT_TEMPLATE_KEY:
            chat_template = value if isinstance(value, str) else None
        elif value is not None:
            kv[key] = value

    alignment = kv.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or (
        alignment & (alignment - 1)
    ):
        raise ModelFileError(f"corrupt: general.alignment is {alignment!r}, not a power of two")

    tensors = _read_tensor_infos(r, n_tensors)
    data_start = -(-r.offset() // alignment) * alignment
    parameters = 0
    bytes_by_type: dict[int, int] = {}
    for name, dims, ttype, offset in tensors:
        n_elem = 1
        for d in dims:
            n_elem *= d
        parameters += n_elem
        if offset % alignment:
            raise ModelFileError(f"corrupt: tensor {name} is not aligned to {alignment} bytes")
        start = data_start + offset
        info = GGML_TYPES.get(ttype)
        nbytes = 0
        if info is not None:
            _, block, tsize = info
            if n_elem % block:
                raise ModelFileError(
                    f"corrupt: tensor {name} has {n_elem} elements, not a multiple of {info[0]}'s block"
                )
            nbytes = n_elem // block * tsize
            if len(dims) >= 2:
                bytes_by_type[ttype] = bytes_by_type.get(ttype, 0) + nbytes
        if start + nbytes > size:
            raise ModelFileError(
                f"truncated: tensor {name} needs bytes {start}..{start + nbytes} "
                f"but the file has {size} bytes"
            )

    return _build(path, size, version, kv, chat_template, tensors, parameters, bytes_by_type, fh, tokens_at)


def _read_tensor_infos(r: Reader, n_tensors: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    tensors = []
    seen: set[str] = set()
    for i in range(n_tensors):
        name = r.string(f"name of tensor #{i}", limit=_MAX_KEY_LEN)
        if name in seen:
            raise ModelFileError(f"corrupt: tensor {name} appears twice")
        seen.add(name)
        n_dims = r.u32(f"dimensions of tensor {name}")
        if not 1 <= n_dims <= _MAX_DIMS:
            raise ModelFileError(f"corrupt: tensor {name} claims {n_dims} dimensions")
        dims = tuple(r.u64(f"shape of tensor {name}") for _ in range(n_dims))
        n_elem = 1
        for d in dims:
            n_elem *= d
        if n_elem >= 1 << 62:
            raise ModelFileError(f"corrupt: tensor {name} claims an impossible shape {dims}")
        ttype = r.u32(f"type of tensor {name}")
        offset = r.u64(f"offset of tensor {name}")
        tensors.append((name, dims, ttype, offset))
    return tensors


def _build(path, size, version, kv, chat_template, tensors, parameters, bytes_by_type, fh, tokens_at):
    arch = kv.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelFileError("not a usable model: general.architecture is missing")

    def arch_int(suffix: str) -> int | None:
        return _int(kv.get(f"{arch}.{suffix}"))

    n_layer = arch_int("block_count")
    n_embd = arch_int("embedding_length")
    n_head = arch_int("attention.head_count")
    n_head_kv = arch_int("attention.head_count_kv") or n_head
    head_dim = arch_int("attention.key_length") or (n_embd // n_head if n_embd and n_head else None)
    vocab_size = arch_int("vocab_size") or (tokens_at[1] if tokens_at else None)

    file_type = _int(kv.get("general.file_type"))
    quant = FILE_TYPES.get(file_type) if file_type is not None else None
    if quant is None and bytes_by_type:
        dominant = max(bytes_by_type, key=bytes_by_type.__getitem__)
        quant = GGML_TYPES[dominant][0]
    quant = quant or "unknown"

    def text(key: str) -> str | None:
        value = kv.get(key)
        return value if isinstance(value, str) and value else None

    name = text("general.name") or path.stem
    finetune = text("general.finetune")
    has_template = bool(chat_template and chat_template.strip())
    kind = classify_kind(has_template, finetune, name, text("general.basename"), path.stem)

    bos = eos = None
    if tokens_at is not None:
        marks, count = tokens_at
        for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
            index = _int(kv.get(key))
            if index is None:
                continue
            token = token_text(fh, size, marks, count, index)
            if key.endswith("bos_token_id"):
                bos = token
            else:
                eos = token

    return GGUFMetadata(
        path=str(path), name=name, architecture=arch, parameters=parameters, quantization=quant,
        file_type=file_type, context_length=arch_int("context_length"), has_chat_template=has_template,
        chat_template=chat_template if has_template else None, file_size=size, kind=kind,
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv, head_dim=head_dim,
        vocab_size=vocab_size, bos_token=bos, eos_token=eos, basename=text("general.basename"),
        size_label=text("general.size_label"), finetune=finetune, license=text("general.license"),
        version=version, tensor_count=len(tensors),
        kv={k: v for k, v in kv.items() if not (isinstance(v, tuple) and v[:1] == ("array",))},
    )
