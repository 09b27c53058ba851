"""Byte-level GGUF surgery for the bad-model tests: an independent header walker (so a bug in the app's
reader can't hide itself) and the catalogue of broken files made from one valid tiny model.

Every broken file is the valid model's bytes with one precise change: a field overwritten, a length
made absurd, or the file cut at an offset chosen from the walked layout (inside the header, a key, a
value, the vocabulary, the tensor infos and the tensor data).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


@dataclass
class KV:
    key: str
    start: int  # offset of the key's length field
    type_at: int  # offset of the value type
    value_at: int  # offset of the value (for arrays: of the element type)
    end: int
    vtype: int
    elements: list[tuple[int, int]] = field(default_factory=list)  # string arrays: (len_at, data_at)


@dataclass
class TensorInfo:
    name: str
    start: int
    dims_at: int
    type_at: int
    offset_at: int
    end: int
    dims: tuple[int, ...]
    ggml_type: int
    offset: int


@dataclass
class Layout:
    size: int
    n_tensors: int
    n_kv: int
    kvs: list[KV]
    tensors: list[TensorInfo]
    infos_end: int
    data_start: int

    def kv(self, key: str) -> KV:
        return next(k for k in self.kvs if k.key == key)


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = U64.unpack_from(buf, pos)
    return buf[pos + 8:pos + 8 + n].decode("utf-8"), pos + 8 + n


def _skip_value(buf: bytes, pos: int, vtype: int, elements: list | None = None) -> int:
    if vtype in _SIZES:
        return pos + _SIZES[vtype]
    if vtype == STRING:
        return _string(buf, pos)[1]
    assert vtype == ARRAY
    (etype,) = U32.unpack_from(buf, pos)
    (count,) = U64.unpack_from(buf, pos + 4)
    pos += 12
    for _ in range(count):
        if elements is not None and etype == STRING:
            elements.append((pos, pos + 8))
        pos = _skip_value(buf, pos, etype)
    return pos


def walk(buf: bytes) -> Layout:
    """The layout of a valid GGUF v3 file (little-endian)."""
    assert buf[:4] == b"GGUF" and U32.unpack_from(buf, 4)[0] == 3
    n_tensors, n_kv = U64.unpack_from(buf, 8)[0], U64.unpack_from(buf, 16)[0]
    pos = 24
    kvs = []
    alignment = 32
    for _ in range(n_kv):
        start = pos
        key, pos = _string(buf, pos)
        (vtype,) = U32.unpack_from(buf, pos)
        kv = KV(key, start, pos, pos + 4, 0, vtype)
        kv.end = _skip_value(buf, pos + 4, vtype, kv.elements)
        if key == "general.alignment":
            alignment = U32.unpack_from(buf, pos + 4)[0]
        kvs.append(kv)
        pos = kv.end
    tensors = []
    for _ in range(n_tensors):
        start = pos
        name, pos = _string(buf, pos)
        (n_dims,) = U32.unpack_from(buf, pos)
        dims_at = pos + 4
        dims = tuple(U64.unpack_from(buf, dims_at + 8 * i)[0] for i in range(n_dims))
        type_at = dims_at + 8 * n_dims
        (ggml_type,) = U32.unpack_from(buf, type_at)
        offset_at = type_at + 4
        (offset,) = U64.unpack_from(buf, offset_at)
        pos = offset_at + 8
        tensors.append(TensorInfo(name, start, dims_at, type_at, offset_at, pos, dims, ggml_type, offset))
    data_start = -(-pos // alignment) * alignment
    return Layout(len(buf), n_tensors, n_kv, kvs, tensors, pos, data_start)


def put(buf: bytes, at: int, st: struct.Struct, value: int) -> bytes:
    out = bytearray(buf)
    st.pack_into(out, at, value)
    return bytes(out)


def truncation_offsets(lay: Layout) -> list[tuple[str, int]]:
    """Cut points spread over every region of the file, each named for the report: 40+ of them."""
    cuts: list[tuple[str, int]] = [
        ("inside the magic", 2), ("after the magic", 4), ("inside the version", 6), ("after the version", 8),
        ("inside the tensor count", 12), ("after the tensor count", 16), ("inside the KV count", 20),
        ("after the fixed header", 24),
    ]
    first = lay.kvs[0]
    cuts += [("inside the first key's length", first.start + 3), ("inside the first key", first.start + 10),
             ("at the first value type", first.type_at), ("inside the first value", first.value_at + 2)]
    for key in ("general.name", "llama.context_length", "tokenizer.ggml.model", "tokenizer.chat_template"):
        kv = next((k for k in lay.kvs if k.key == key), None)
        if kv is not None:
            cuts += [(f"at the value of {key}", kv.value_at), (f"inside the value of {key}", (kv.value_at + kv.end) // 2),
                     (f"one byte before the end of {key}", kv.end - 1)]
    tokens = lay.kv("tokenizer.ggml.tokens")
    n = len(tokens.elements)
    cuts += [("at the vocabulary's element type", tokens.value_at), ("inside the vocabulary's count", tokens.value_at + 6)]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        len_at, data_at = tokens.elements[min(int(frac * n), n - 1)]
        cuts += [(f"inside token length at {frac:.0%} of the vocab", len_at + 4),
                 (f"inside token text at {frac:.0%} of the vocab", data_at + 1)]
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        kv = lay.kv(key)
        cuts += [(f"inside the {key} array", (kv.value_at + kv.end) // 2)]
    last_kv = lay.kvs[-1]
    cuts += [("at the end of the metadata", last_kv.end - 1)]
    for which, t in (("first", lay.tensors[0]), ("middle", lay.tensors[len(lay.tensors) // 2]),
                     ("last", lay.tensors[-1])):
        cuts += [(f"inside the {which} tensor's name", t.start + 10), (f"inside the {which} tensor's dims", t.dims_at + 3),
                 (f"inside the {which} tensor's type", t.type_at + 1),
                 (f"inside the {which} tensor's offset", t.offset_at + 5)]
    cuts += [("between the tensor infos and the aligned data", lay.infos_end + (lay.data_start - lay.infos_end) // 2
              if lay.data_start > lay.infos_end else lay.infos_end - 1),
             ("at the start of the tensor data", lay.data_start),
             ("inside the first tensor's data", lay.data_start + 100)]
    body = lay.size - lay.data_start
    for frac in (0.25, 0.5, 0.75, 0.9):
        cuts += [(f"{frac:.0%} into the tensor data", lay.data_start + int(frac * body))]
    cuts += [("one byte short of the end", lay.size - 1)]
    seen: set[int] = set()
    unique = []
    for name, at in cuts:
        if 0 < at < lay.size and at not in seen:
            seen.add(at)
            unique.append((name, at))
    return unique


def _set_kv_u32(lay: Layout, key: str, value: int) -> Callable[[bytes], bytes]:
    return lambda buf: put(buf, lay.kv(key).value_at, U32, value)


def corruptions(buf: bytes, lay: Layout) -> dict[str, bytes]:
    """Named broken variants of ``buf`` (besides truncations). Each must read as a clean error."""
    name_kv = lay.kv("general.name")
    tokens = lay.kv("tokenizer.ggml.tokens")
    last = lay.tensors[-1]
    first = lay.tensors[0]
    original, twin = _same_length_names(lay)
    out = {
        "empty": b"",
        "text file": b"This is not a model, just some notes someone saved as .gguf.\n" * 40,
        "html error page": b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n",
        "zeros": bytes(4096),
        "three bytes": b"GGU",
        "bad magic": b"GGUX" + buf[4:],
        "lowercase magic": b"gguf" + buf[4:],
        "version 1": put(buf, 4, U32, 1),
        "version 99": put(buf, 4, U32, 99),
        "version 0xFFFFFFFF": put(buf, 4, U32, 0xFFFFFFFF),
        "big-endian version": put(buf, 4, U32, 0x03000000),
        "absurd tensor count": put(buf, 8, U64, 2**63 - 1),
        "tensor count plus one": put(buf, 8, U64, lay.n_tensors + 1),
        "absurd KV count": put(buf, 16, U64, 2**40),
        "KV count plus one": put(buf, 16, U64, lay.n_kv + 1),
        "absurd key length": put(buf, lay.kvs[0].start, U64, 2**62),
        "absurd string value length": put(buf, name_kv.value_at, U64, 2**50),
        "string value length past the end": put(buf, name_kv.value_at, U64, lay.size),
        "absurd vocabulary count": put(buf, tokens.value_at + 4, U64, 2**60),
        "absurd token length": put(buf, tokens.elements[7][0], U64, 2**61),
        "unknown value type": put(buf, name_kv.type_at, U32, 99),
        "unknown array element type": put(buf, tokens.value_at, U32, 77),
        "tensor with 9 dimensions": put(buf, first.dims_at - 4, U32, 9),
        "tensor with 0 dimensions": put(buf, first.dims_at - 4, U32, 0),
        "tensor with an absurd shape": put(put(buf, first.dims_at, U64, 2**40), first.dims_at + 8, U64, 2**40),
        "tensor with an unknown type": put(buf, first.type_at, U32, 999),
        "tensor data out of bounds": put(buf, last.offset_at, U64, lay.size * 2),
        "tensor data just past the end": put(buf, last.offset_at, U64, last.offset + 4096 * 32),
        "tensor offset not aligned": put(buf, last.offset_at, U64, last.offset + 1),
        "tensor offset absurd": put(buf, last.offset_at, U64, 2**63),
        "duplicate tensor name": _rename(buf, twin, original.name),
        "no architecture key": _rename_key(buf, lay.kv("general.architecture"), "general.architectur_"),
        "alignment not a power of two": _insert_alignment(buf, lay, 3),
    }
    return out


def _same_length_names(lay: Layout) -> tuple[TensorInfo, TensorInfo]:
    """Two tensors whose names have the same length (blk.0.attn_q.weight, blk.0.attn_k.weight)."""
    by_len: dict[int, TensorInfo] = {}
    for t in lay.tensors:
        if len(t.name) in by_len:
            return by_len[len(t.name)], t
        by_len[len(t.name)] = t
    raise AssertionError("no two tensor names of the same length")


def _rename(buf: bytes, tensor: TensorInfo, new: str) -> bytes:
    assert len(new.encode()) == len(tensor.name.encode())
    return buf[:tensor.start + 8] + new.encode() + buf[tensor.start + 8 + len(new.encode()):]


def _rename_key(buf: bytes, kv: KV, new: str) -> bytes:
    old = buf[kv.start + 8:kv.type_at]
    assert len(new.encode()) == len(old)
    return buf[:kv.start + 8] + new.encode() + buf[kv.type_at:]


def _insert_alignment(buf: bytes, lay: Layout, value: int) -> bytes:
    """Replace one u32 hyper-parameter entry with general.alignment=value (the file's later bytes shift;
    a reader must fail on the alignment itself before it gets to them)."""
    kv = next(k for k in lay.kvs if k.vtype == 4 and k.key.startswith("llama."))
    key = b"general.alignment"
    entry = U64.pack(len(key)) + key + U32.pack(4) + U32.pack(value)
    return buf[:kv.start] + entry + buf[kv.end:]


def duplicate_vocab(buf: bytes, lay: Layout) -> bytes:
    """Make two tokens the same text: token <0x01> becomes "<0x02>" (same length, offsets unchanged)."""
    tokens = lay.kv("tokenizer.ggml.tokens")
    for len_at, data_at in tokens.elements:
        (n,) = U64.unpack_from(buf, len_at)
        if buf[data_at:data_at + n] == b"<0x01>":
            return buf[:data_at] + b"<0x02>" + buf[data_at + n:]
    raise AssertionError("token <0x01> not found")


def all_duplicate_words(buf: bytes, lay: Layout) -> bytes:
    """Many duplicates: every normal word token becomes the same text as its neighbour of the same length."""
    tokens = lay.kv("tokenizer.ggml.tokens")
    out = bytearray(buf)
    prev: tuple[int, bytes] | None = None
    for len_at, data_at in tokens.elements[300:]:
        (n,) = U64.unpack_from(buf, len_at)
        text = bytes(buf[data_at:data_at + n])
        if prev is not None and prev[0] == n:
            out[data_at:data_at + n] = prev[1]
        prev = (n, text)
    return bytes(out)


def huge_context(buf: bytes, lay: Layout, value: int = 0xFFFFFFFF) -> bytes:
    return put(buf, lay.kv("llama.context_length").value_at, U32, value)
