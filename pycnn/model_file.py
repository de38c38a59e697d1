"""Reading a ``.npz`` model file, with a specific message for everything that is not one.

The format is described in :mod:`pycnn.model`, which writes it. Every check
raises :class:`ModelFormatError` (or :class:`ModelNotFoundError` for a path
that is not a file) naming what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np

from .errors import ModelFormatError, ModelNotFoundError, PycnnError
from .layers import layer_from_config
from .model import FORMAT, PRESETS, VERSION, Sequential, build_model


def _read_npz(source: str | os.PathLike | bytes | io.IOBase) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; refuses anything else with a specific message."""
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        if os.path.isdir(where):
            raise ModelNotFoundError(f"model file {where} is a folder; give the .npz file inside it")
        if not os.path.isfile(where):
            raise ModelNotFoundError(f"model file {where} not found")
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ModelFormatError(f"cannot read the model file {where}: {exc.strerror or exc}") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        where, data = "the model data", bytes(source)
    else:
        where, data = "the model file", source.read()
    _check_container(data, where)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFormatError(f"{where} is a corrupt .npz file ({exc})") from None


def _check_container(data: bytes, where: str) -> None:
    """Refuse bytes that are not an intact zip of ``.npy`` arrays, saying what they are."""
    if not data:
        raise ModelFormatError(f"{where} is empty")
    if data.startswith(b"\x93NUMPY"):
        raise ModelFormatError(f"{where} is a single-array .npy file, not a .npz model")
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ModelFormatError(f"{where} is not a .npz file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            damaged = zf.testzip()  # reads every member and checks its CRC
            names = zf.namelist()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ModelFormatError(f"{where} is a corrupt or truncated .npz file ({exc})") from None
    if damaged is not None:
        raise ModelFormatError(f"{where} is a corrupt .npz file: {damaged} is damaged")
    others = [n for n in names if not n.endswith(".npy")]
    if others:
        raise ModelFormatError(f"{where} is a zip archive but not a .npz file (it holds {', '.join(others[:3])})")


def load_model(source: str | os.PathLike | bytes | io.IOBase,
               input_shape: tuple[int, int, int] | None = None,
               num_classes: int | None = None) -> Sequential:
    """Rebuild a model saved by :meth:`Sequential.save` / :meth:`Sequential.to_bytes`.

    ``source`` is a path, the file's bytes or a binary file object. When
    ``input_shape`` or ``num_classes`` is given, a model for other images or
    classes is refused. Raises :class:`ModelFormatError` with a specific
    message for anything that is not a valid pycnn model.
    """
    arrays = _read_npz(source)
    if "architecture" not in arrays:
        raise ModelFormatError("the .npz file has no 'architecture' entry: it was not saved by pycnn")
    try:
        arch = json.loads(str(arrays.pop("architecture")))
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"the model's architecture is not valid JSON ({exc})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise ModelFormatError("the .npz file is not a pycnn model (missing format marker)")
    _check_version(arch.get("version", 1))
    _check_preset(arch.get("preset"))
    try:
        layers = [layer_from_config(c) for c in arch["layers"]]
        model = Sequential(layers, tuple(arch["input_shape"]), arch.get("preset"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"the model's architecture is invalid: {exc}") from None
    _check_preset_layers(model)
    if input_shape is not None and model.input_shape != tuple(input_shape):
        raise ModelFormatError(f"this model takes images of shape {model.input_shape}, "
                               f"not {tuple(input_shape)}")
    if num_classes is not None and model.num_classes != num_classes:
        raise ModelFormatError(f"this model predicts {model.num_classes} classes, not {num_classes}")
    _assign_weights(model, arrays)
    return model


def _check_version(version: Any) -> None:
    """Files without a version are version 1; a newer pycnn's files are refused."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFormatError(f"model file version {version!r} is not a format version")
    if version > VERSION:
        raise ModelFormatError(f"the model file has format version {version}, from a newer pycnn; this pycnn "
                               f"reads version {VERSION} and older: upgrade pycnn to load it")


def _check_preset(preset: Any) -> None:
    """The architecture's name: null (a custom model) or one of PRESETS with a dict of hyperparameters."""
    if preset is None:
        return
    if not isinstance(preset, dict) or not isinstance(preset.get("hparams", {}), dict):
        raise ModelFormatError(f"the model's architecture is invalid: preset must be a dict, got {preset!r}")
    if preset.get("name") not in PRESETS:
        raise ModelFormatError(f"unknown architecture {preset.get('name')!r} in the model file; "
                               f"this pycnn knows {', '.join(PRESETS)}")


def _check_preset_layers(model: Sequential) -> None:
    """A file that names a preset must hold that preset's layers for its hyperparameters."""
    if model.preset is None:
        return
    name, hparams = model.preset["name"], model.preset.get("hparams", {})
    try:
        expected = build_model(name, **hparams).architecture()["layers"]
    except MemoryError:
        raise ModelFormatError(f"the model file's {name} hyperparameters ask for an impossibly large model") from None
    except PycnnError as exc:
        raise ModelFormatError(f"the model file's {name} hyperparameters are invalid: {exc}") from None
    if expected != [layer.config() for layer in model.layers]:
        raise ModelFormatError(f"the model file says it is a {name} model, but its layers are not "
                               f"{name}'s for its hyperparameters")


def _assign_weights(model: Sequential, arrays: dict[str, np.ndarray]) -> None:
    params = model.params()
    missing = [p.name for p in params if p.name not in arrays]
    extra = sorted(set(arrays) - {p.name for p in params})
    if missing or extra:
        raise ModelFormatError(f"the weights do not match the architecture: missing {missing or 'none'}, "
                               f"unexpected {extra or 'none'}")
    for p in params:
        value = arrays[p.name]
        if value.shape != p.value.shape:
            raise ModelFormatError(f"weights {p.name} have shape {value.shape}, "
                                   f"but the architecture needs {p.value.shape}")
        if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
            raise ModelFormatError(f"weights {p.name} are not finite floating-point numbers")
        p.value[...] = value
