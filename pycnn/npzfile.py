"""``.npz`` archives read without trusting them.

A member's ``.npy`` header declares its shape and dtype, and the zip
directory its size. :class:`Archive` reads those first, for the caller to
check against what its format allows, and reads a member's data only when
asked, exactly as much as declared: a small archive cannot make pycnn
allocate more than its caller accepted. No pickles are ever loaded.
"""

from __future__ import annotations

import io
import math
import os
import tokenize
import zipfile
import zlib
from typing import Self

import numpy as np
from numpy.lib import format as npy

from .errors import PycnnError
from .limits import expansion_problem

MAX_MEMBERS = 1000       # arrays in one archive (a pycnn model has two per layer with weights)
MAX_HEADER = 10_000      # bytes of one .npy header (numpy's own default limit)
# What zipfile and numpy raise for damaged archives, depending on where the damage is (numpy
# parses a damaged .npy header with tokenize, which raises TokenError or SyntaxError).
DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
          KeyError, OverflowError, SyntaxError, tokenize.TokenError)


class Archive:
    """The arrays of an ``.npz`` (a path or its bytes); errors are ``error(message)`` naming ``where``.

    ``members`` maps each array's key (its member name without ``.npy``)
    to its zip entry.
    """

    def __init__(self, source: str | os.PathLike | bytes, where: str, error: type[PycnnError]) -> None:
        self.where, self.error = where, error
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
            infos = self._zip.infolist()
        except DAMAGE as exc:
            raise error(f"{where} is a corrupt or truncated .npz file ({exc})") from None
        if len(infos) > MAX_MEMBERS:
            self.close()
            raise error(f"{where} holds {len(infos):,} arrays; a pycnn .npz holds at most {MAX_MEMBERS:,}")
        self.members = {info.filename.removesuffix(".npy"): info for info in infos}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def others(self) -> list[str]:
        """Names of the members that are not ``.npy`` arrays."""
        return [info.filename for info in self.members.values() if not info.filename.endswith(".npy")]

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype member ``key`` declares, read from its header alone; object arrays are refused."""
        info = self.members[key]
        try:
            with self._zip.open(info) as f:
                shape, dtype, _ = _read_header(f)
        except DAMAGE as exc:
            raise self.error(f"{self.where} is a corrupt .npz file: {info.filename} is damaged ({exc})") from None
        if dtype.hasobject:
            raise self.error(f"{self.where}: {key} holds Python objects (a pickle), which pycnn never loads")
        return shape, dtype

    def check_size(self, key: str) -> None:
        """Refuse member ``key`` if its size in the zip directory is not its header plus the data
        it declares, or if it would expand like a decompression bomb (pycnn.limits)."""
        info = self.members[key]
        try:
            with self._zip.open(info) as f:
                shape, dtype, offset = _read_header(f)
        except DAMAGE as exc:
            raise self.error(f"{self.where} is a corrupt .npz file: {info.filename} is damaged ({exc})") from None
        declared = offset + math.prod(shape) * dtype.itemsize
        if info.file_size != declared:
            raise self.error(f"{self.where} is a corrupt .npz file: {key} declares {declared:,} bytes "
                             f"but its zip entry holds {info.file_size:,}")
        bomb = expansion_problem(declared, info.compress_size)
        if bomb:
            raise self.error(f"{self.where}: {key} {bomb}")

    def read(self, key: str) -> np.ndarray:
        """Member ``key``'s array, once the caller has checked its :meth:`header`; checks its size first."""
        self.check_size(key)
        info = self.members[key]
        try:
            with self._zip.open(info) as f:
                return npy.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER)
        except DAMAGE as exc:
            raise self.error(f"{self.where} is a corrupt .npz file: {info.filename} is damaged ({exc})") from None


def _read_header(f: io.IOBase) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length in bytes) of the .npy data in ``f``; ValueError if it is not one."""
    version = npy.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = npy.read_array_header_1_0(f, max_header_size=MAX_HEADER)
    elif version == (2, 0):
        shape, _, dtype = npy.read_array_header_2_0(f, max_header_size=MAX_HEADER)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    return tuple(int(s) for s in shape), dtype, f.tell()
