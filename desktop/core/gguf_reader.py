"""Bounds-checked sequential reads over a GGUF header, and the fast walk over its big string arrays.

Split from ``gguf_meta`` (which decides what the header *means*) because this is the part that must be
fast: the reader walks the file in large chunks and skips arrays without decoding them.

String arrays (the vocabulary, BPE merges) still need their lengths walked, and the vocabulary is checked
for duplicate tokens (llama.cpp aborts on them). A Python loop over Gemma 3's 262k tokens took ~100 ms of
CPU (200-580 ms on a busy machine), most of the time to open a library. So big arrays go through
``_skip_strings_fast``: numpy finds every offset that can hold a length prefix and follows the chain from
the array's start by pointer doubling (exact); duplicates are found by sorting a key made of each token's
length, first 16 and last 8 bytes, and tokens whose keys collide are compared byte by byte. Whenever that
walk cannot finish (a corrupt or unusual file), the plain loop runs from the start and gives the exact error.
"""

from __future__ import annotations

import struct
from itertools import repeat
from typing import Any, BinaryIO

from desktop.core.errors import ModelFileError

_CHUNK = 2 << 20  # bytes read at a time; a 128k vocab's tokens and merges are ~2 and ~5 MB
_MARK_EVERY = 1024  # strings per batch when walking a string array
_FAST_MIN = 8192  # string arrays at least this long go through numpy (importing it costs more on small ones)
_FAST_MAX_LEN = 1 << 16  # the numpy walk assumes strings shorter than this, else the loop runs
_FAST_WINDOW = 2 << 20  # bytes the numpy walk looks at at a time (its scratch arrays stay in cache)
MAX_STRING_LEN = 256 << 20  # a chat template is kilobytes; anything near this is corrupt
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Reader:
    """Sequential, bounds-checked reads over a file, refilled in big chunks."""

    def __init__(self, fh: BinaryIO, size: int):
        self.fh = fh
        self.size = size
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.pos = 0  # index into buf
        self.empty_strings = 0  # counted by skip_strings(distinct=True)
        self.duplicates = 0  # non-empty strings that repeat an earlier one, counted likewise

    def offset(self) -> int:
        return self.base + self.pos

    def need(self, n: int, what: str) -> None:
        if self.pos + n <= len(self.buf):
            return
        at = self.offset()
        if at + n > self.size:
            raise ModelFileError(
                f"truncated: {what} at byte {at} needs {n} bytes but the file ends at byte {self.size}"
            )
        rest = self.buf[self.pos:]
        self.fh.seek(self.base + len(self.buf))
        more = self.fh.read(max(n - len(rest), _CHUNK))
        self.base, self.buf, self.pos = at, rest + more, 0
        if len(self.buf) < n:  # the file shrank under us
            raise ModelFileError(f"truncated: {what} at byte {at}: the file ended early while reading")

    def skip(self, n: int, what: str) -> None:
        at = self.offset()
        if n < 0 or at + n > self.size:
            raise ModelFileError(
                f"truncated: {what} at byte {at} needs {n} bytes but the file ends at byte {self.size}"
            )
        if self.pos + n <= len(self.buf):
            self.pos += n
        else:
            self.base, self.buf, self.pos = at + n, b"", 0
            self.fh.seek(self.base)

    def unpack(self, st: struct.Struct, what: str) -> Any:
        self.need(st.size, what)
        value = st.unpack_from(self.buf, self.pos)[0]
        self.pos += st.size
        return value

    def u32(self, what: str) -> int:
        return self.unpack(_U32, what)

    def u64(self, what: str) -> int:
        return self.unpack(_U64, what)

    def string(self, what: str, limit: int = MAX_STRING_LEN) -> str:
        n = self.u64(f"length of {what}")
        if n > limit:
            raise ModelFileError(f"corrupt: {what} at byte {self.offset() - 8} claims {n} bytes")
        self.need(n, what)
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self, what: str) -> None:
        n = self.u64(f"length of {what}")
        if n > MAX_STRING_LEN:
            raise ModelFileError(f"corrupt: {what} at byte {self.offset() - 8} claims {n} bytes")
        self.skip(n, what)

    def skip_strings(self, count: int, what: str, marks: list[int] | None = None,
                     distinct: bool = False) -> None:
        """Walk ``count`` length-prefixed strings: the one unavoidable loop, kept as tight as Python allows.

        Works in batches of ``_MARK_EVERY``: an unchecked loop per batch (an overrun shows as a
        ``struct.error`` or a position past the buffer), redone with checks only where a batch crosses
        the end of the buffered chunk. ``marks`` collects the file offset of every batch's first string,
        so one token's text can be found later without walking the whole vocabulary again. ``distinct``
        also counts empty and duplicated strings (``empty_strings``, ``duplicates``).
        """
        if count >= _FAST_MIN and self._skip_strings_fast(count, marks, distinct):
            return
        seen: set[bytes] | None = set() if distinct else None
        empties = 0
        unpack = _U64.unpack_from
        index = 0
        while index < count:
            if marks is not None and index % _MARK_EVERY == 0:
                marks.append(self.offset())
            batch = min(count - index, _MARK_EVERY - index % _MARK_EVERY)
            buf, start = self.buf, self.pos
            pos = start
            got: list[bytes] = []
            try:
                if seen is None:
                    for _ in repeat(None, batch):
                        pos += 8 + unpack(buf, pos)[0]
                else:  # also collect the strings (to find duplicates) in the same walk
                    append = got.append
                    for _ in repeat(None, batch):
                        first = pos + 8
                        pos = first + unpack(buf, pos)[0]
                        append(buf[first:pos])
                fast = pos <= len(buf)
            except struct.error:
                fast = False
            if fast:
                if seen is not None:
                    seen.update(got)
                    empties += got.count(b"")
                self.pos = pos
                index += batch
                continue
            pos, end = start, len(buf)
            done = 0
            while done < batch and pos + 8 <= end:
                nxt = pos + 8 + unpack(buf, pos)[0]
                if nxt > end:
                    break
                if seen is not None:
                    seen.add(buf[pos + 8:nxt])
                    empties += nxt == pos + 8
                pos = nxt
                done += 1
            self.pos = pos
            index += done
            if done < batch:  # the next string crosses the end of the chunk: read on
                if pos + 8 <= end:
                    n = unpack(buf, pos)[0]
                    if n > MAX_STRING_LEN:
                        raise ModelFileError(
                            f"corrupt: {what}[{index}] at byte {self.offset()} claims {n} bytes"
                        )
                    self.need(8 + n, f"{what}[{index}]")
                else:
                    self.need(8, f"{what}[{index}]")
        if seen is not None:
            self.empty_strings += empties
            self.duplicates += (count - empties) - len(seen - {b""})

    def _skip_strings_fast(self, count: int, marks: list[int] | None, distinct: bool) -> bool:
        """``skip_strings`` through numpy, window by window; False (nothing consumed) if it does not verify."""
        import numpy as np

        at = self.offset()
        data = self.buf[self.pos:]
        starts: list[Any] = []
        ends: list[Any] = []
        done, pos = 0, 0  # strings walked; offset (into data) of the next one
        while done < count:
            window = min(_FAST_WINDOW, (count - done) * 24 + 4096)  # ~2x a typical token's 8 + 5..17 bytes
            if len(data) < pos + window and at + len(data) < self.size:
                self.fh.seek(at + len(data))
                data += self.fh.read(pos + window - len(data))
            chain = _chain(np, memoryview(data)[pos:pos + window], count - done)
            if chain is None:
                return False
            offsets, nexts = chain
            starts.append(offsets + pos)
            ends.append(nexts + pos)
            done += len(offsets)
            pos += int(nexts[-1])
        if at + pos > self.size:
            return False
        offsets, nexts = np.concatenate(starts), np.concatenate(ends)
        lengths = nexts - offsets - 8
        empties = int(np.count_nonzero(lengths == 0))
        if distinct:
            padded = data if len(data) >= pos + 16 else data[:pos] + bytes(16)  # key reads overrun by <= 16
            self.duplicates += _duplicates(np, padded, offsets, lengths)
            self.empty_strings += empties
        if marks is not None:
            marks.extend(at + o for o in offsets[::_MARK_EVERY].tolist())
        self.base, self.buf, self.pos = at, data, pos
        return True


def _chain(np: Any, window: memoryview, need: int, limit: int = 256) -> tuple[Any, Any] | None:
    """The first (up to ``need``) length-prefixed strings of ``window``: their offsets and end offsets.

    Every offset whose u64 is a plausible length is a candidate, and each candidate points to the one after
    its string. The strings are the chain of candidates from offset 0: usually just the candidates in order
    (checked link by link), else followed by pointer doubling (every round doubles the walked prefix and the
    jump length), so it is exact either way and takes at most log2(need) vector steps.
    Candidates are first the offsets of strings shorter than ``limit`` (256: few false candidates, as a
    short string's length prefix has seven zero bytes); a longer string breaks that chain and the walk is
    redone with ``_FAST_MAX_LEN``. None: not even the first string is there.
    """
    size = len(window)
    if size < 8 or need <= 0:
        return None
    words = np.ndarray((size - 7,), dtype="<u8", buffer=window, strides=(1,))  # a u64 at every offset
    alive = np.flatnonzero(words < limit)
    if not len(alive) or alive[0] != 0:
        return None if limit >= _FAST_MAX_LEN else _chain(np, window, need, _FAST_MAX_LEN)
    nxt = words[alive].astype(np.int64)
    nxt += alive + 8
    sink = len(alive)
    m = min(need, sink)
    if np.array_equal(nxt[:m - 1], alive[1:m]):  # the usual case: no false candidate among the first m
        path = np.arange(m)
    else:
        index = np.full(size + 1, sink, dtype=np.int32)  # offset -> candidate number (sink: none)
        index[alive] = np.arange(sink, dtype=np.int32)
        jump = np.append(index[np.minimum(nxt, size)], np.int32(sink))  # candidate -> the next one
        path = np.zeros(1, dtype=np.int32)
        while len(path) < need and path[-1] != sink:
            path = np.concatenate((path, jump[path]))
            jump = jump[jump]
        path = path[:need]
        ends = np.flatnonzero(path == sink)
        if len(ends):
            path = path[:ends[0]]
    if len(path) < need and limit < _FAST_MAX_LEN and nxt[path[-1]] + 8 <= size:
        return _chain(np, window, need, _FAST_MAX_LEN)  # the chain broke inside the window: a long string?
    return alive[path], nxt[path]


def _duplicates(np: Any, padded: bytes, offsets: Any, lengths: Any) -> int:
    """How many non-empty strings repeat an earlier one (``padded``: the array and >= 16 more bytes).

    Each string gets a 64-bit key from its length, first 16 and last 8 bytes; only strings whose keys
    collide are compared byte by byte, so the count is exact.
    """
    nonempty = lengths > 0
    starts, lens = offsets[nonempty] + 8, lengths[nonempty]
    words = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    masks = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
    # Key: the length and the words at bytes 0 and 8 and the last 8 bytes, each masked to the string.
    head = words[starts] & masks[np.minimum(lens, 8)]
    second = words[starts + 8] & masks[np.minimum(np.maximum(lens - 8, 0), 8)]
    tail = words[starts + np.maximum(lens - 8, 0)] & masks[np.minimum(lens, 8)]
    key = lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    key += (head ^ (head >> np.uint64(31))) * np.uint64(0xC2B2AE3D27D4EB4F)
    key += (second ^ (second >> np.uint64(27))) * np.uint64(0x165667B19E3779F9)
    key += (tail ^ (tail >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
    skey = np.sort(key)
    repeated = skey[1:][skey[1:] == skey[:-1]]
    if not len(repeated):
        return 0
    members = np.flatnonzero(np.isin(key, repeated))
    groups: dict[int, list[int]] = {}
    for m in members.tolist():
        groups.setdefault(int(key[m]), []).append(m)
    duplicates = 0
    for group in groups.values():
        texts = {padded[int(starts[m]):int(starts[m] + lens[m])] for m in group}
        duplicates += len(group) - len(texts)
    return duplicates


def token_text(fh: BinaryIO, size: int, marks: list[int], count: int, index: int) -> str | None:
    """The text of one token, walking at most ``_MARK_EVERY`` strings from the nearest mark."""
    if not 0 <= index < count or index // _MARK_EVERY >= len(marks):
        return None
    r = Reader(fh, size)
    r.skip(marks[index // _MARK_EVERY], "tokens")
    r.skip_strings(index % _MARK_EVERY, "tokenizer.ggml.tokens")
    return r.string(f"token {index}", limit=1 << 16)
