"""The IDX format of MNIST's files, raw or gzip-compressed, read within what its header promises.

An IDX file is a 4-byte magic number (0, 0, element type, number of
dimensions), one big-endian uint32 per dimension, then the elements. The
header is read first, from the first decompressed bytes of a gzip file, and
decompression stops at the size it promises: a small file that would expand
to gigabytes is refused after at most that size, never expanded in full.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from .errors import DataFormatError
from .limits import data_array_problem, expansion_problem

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20  # bytes decompressed at a time


class _Inflater:
    """Gzip data (one or more members) decompressed on demand, ``read(n)`` bytes at a time."""

    def __init__(self, data: memoryview, name: str) -> None:
        self.name, self._data, self._pos = name, data, 0
        self._d, self._tail, self._ended = zlib.decompressobj(wbits=31), b"", False

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the data."""
        parts, got = [], 0
        while got < n and self._more():
            # Input goes in by pieces too, so what is left over is never a copy of the whole file.
            source = self._tail or self._data[self._pos : self._pos + CHUNK]
            self._pos += 0 if self._tail else len(source)
            try:
                part = self._d.decompress(source, min(n - got, CHUNK))
            except zlib.error as e:
                raise DataFormatError(f"{self.name}: corrupt or truncated gzip data ({e})") from None
            self._tail = self._d.unconsumed_tail
            parts.append(part)
            got += len(part)
            if not self._tail and self._pos >= len(self._data) and not self._d.eof:
                raise DataFormatError(f"{self.name}: corrupt or truncated gzip data (the stream ends early)")
        return b"".join(parts)

    def _more(self) -> bool:
        """Whether data may follow: the current member goes on, or another member starts."""
        if not self._d.eof:
            return True
        if self._ended:
            return False
        self._pos -= len(self._d.unused_data)
        rest = self._data[self._pos :]
        if not np.frombuffer(rest, np.uint8).any():  # gzip allows zero padding after the last member
            self._ended = True
            return False
        if rest[:2] != GZIP_MAGIC:
            raise DataFormatError(f"{self.name}: corrupt gzip data (other bytes follow the compressed data)")
        self._d, self._tail = zlib.decompressobj(wbits=31), b""
        return True


class _Raw:
    """Uncompressed bytes with the same ``read(n)``."""

    def __init__(self, data: memoryview) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int) -> bytes:
        part = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(part)
        return part


def parse_idx(buf: bytes | bytearray | memoryview, name: str = "IDX buffer") -> np.ndarray:
    """Decode one IDX file of unsigned bytes (gzip-compressed or not).

    Returns a uint8 array shaped by the header: (N,) for labels (magic
    0x00000801) or (N, H, W) for images (magic 0x00000803); it owns its memory,
    so the caller's buffer may be reused. `name` only labels error messages.
    Raises DataFormatError if the bytes are not a complete IDX file, or
    declare more than pycnn.limits allows.
    """
    data = memoryview(buf).cast("B")
    gz = data[:2] == GZIP_MAGIC
    if not gz and name.endswith(".gz") and data:
        raise DataFormatError(f"{name}: named .gz but not gzip data (it starts with {bytes(data[:4]).hex()})")
    stream = _Inflater(data, name) if gz else _Raw(data)
    dims, header = _header(stream, name)
    bomb = gz and expansion_problem(header + math.prod(dims), len(data))
    if bomb:
        raise DataFormatError(f"{name}: its gzip data {bomb}")
    body = np.empty(math.prod(dims), np.uint8)
    got = _fill(stream, memoryview(body))
    expected = f"{name}: header promises shape {dims} ({header + body.size} bytes)"
    if got < body.size:
        raise DataFormatError(f"{expected} but it has {header + got} bytes (truncated?)")
    if stream.read(1):
        raise DataFormatError(f"{expected} but it has {len(data)} bytes" if not gz else
                              f"{expected} but its gzip data holds more")
    return body.reshape(dims)


def _header(stream: _Inflater | _Raw, name: str) -> tuple[tuple[int, ...], int]:
    """The dimensions the header declares, after checking them, and the header's length."""
    magic = stream.read(4)
    if not magic:
        raise DataFormatError(f"{name} is empty")
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise DataFormatError(f"{name}: not an IDX file (bad magic number {magic.hex() or 'empty'})")
    if magic[2] != 0x08:
        raise DataFormatError(f"{name}: IDX element type 0x{magic[2]:02x} unsupported; "
                              "MNIST uses unsigned bytes (0x08)")
    ndim = magic[3]
    if ndim not in (1, 3):
        raise DataFormatError(f"{name}: IDX file has {ndim} dimensions; expected 1 (labels) or 3 (images)")
    raw = stream.read(4 * ndim)
    header = 4 + 4 * ndim
    if len(raw) < 4 * ndim:
        raise DataFormatError(f"{name}: truncated header ({4 + len(raw)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    problem = data_array_problem(dims, np.dtype(np.uint8))
    if problem:
        raise DataFormatError(f"{name}: the IDX header {problem}")
    return dims, header


def _fill(stream: _Inflater | _Raw, out: memoryview) -> int:
    """Read into ``out`` until it is full or the data ends; returns the bytes read."""
    got = 0
    while got < len(out):
        part = stream.read(min(len(out) - got, CHUNK))
        if not part:
            break
        out[got : got + len(part)] = part
        got += len(part)
    return got
