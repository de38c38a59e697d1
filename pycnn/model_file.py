"""Reading a ``.npz`` model file, with a specific message for everything that is not one.

The format is described in :mod:`pycnn.model`, which writes it. Every check
raises :class:`ModelFormatError` (or :class:`ModelNotFoundError` for a path
that is not a regular file) naming what is wrong, and every size is checked
before anything is allocated: each array's declared shape (from its ``.npy``
header) against what the architecture needs.
"""

from __future__ import annotations

import io
import json
import math
import os
from typing import Any

import numpy as np

from .errors import ConfigError, ModelFormatError, ModelNotFoundError
from .files import regular_file
from .layers import LAYER_TYPES, count_params, layer_from_config, param_shapes
from .limits import MAX_SIDE, params_problem
from .model import FORMAT, PRESETS, VERSION, Sequential, layer_names
from .npzfile import Archive

MAX_LAYERS = 500              # layers of a model file's architecture
MAX_ARCHITECTURE = 1_000_000  # characters of its JSON


def _read_npz(source: str | os.PathLike | bytes | io.IOBase) -> Archive:
    """The ``.npz`` archive at ``source``, not yet read; refuses anything else with a specific message."""
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        if os.path.isdir(where):
            raise ModelNotFoundError(f"model file {where} is a folder; give the .npz file inside it")
        regular_file(where, "model file", ModelNotFoundError)  # a FIFO would block the read forever
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ModelFormatError(f"cannot read the model file {where}: {exc.strerror or exc}") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        where, data = "the model data", bytes(source)
    elif hasattr(source, "read"):
        where, data = "the model file", source.read()
    else:
        raise ConfigError(f"load_model takes a path, the file's bytes or a binary file object, "
                          f"got {type(source).__name__}")
    if not isinstance(data, bytes):
        raise ConfigError(f"{where} was opened as text; open it in binary mode ('rb')")
    _check_container(data, where)
    return Archive(data, where, ModelFormatError)


def _check_container(data: bytes, where: str) -> None:
    """Refuse bytes that are not a zip archive, saying what they are."""
    if not data:
        raise ModelFormatError(f"{where} is empty")
    if data.startswith(b"\x93NUMPY"):
        raise ModelFormatError(f"{where} is a single-array .npy file, not a .npz model")
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ModelFormatError(f"{where} is not a .npz file")


def load_model(source: str | os.PathLike | bytes | io.IOBase,
               input_shape: tuple[int, int, int] | None = None,
               num_classes: int | None = None) -> Sequential:
    """Rebuild a model saved by :meth:`Sequential.save` / :meth:`Sequential.to_bytes`.

    ``source`` is a path, the file's bytes or a binary file object. When
    ``input_shape`` or ``num_classes`` is given, a model for other images or
    classes is refused. Raises :class:`ModelFormatError` with a specific
    message for anything that is not a valid pycnn model. Every size the file
    declares (architecture, arrays) is checked before anything is allocated.
    """
    with _read_npz(source) as archive:
        others = archive.others()
        if others:
            raise ModelFormatError(f"{archive.where} is a zip archive but not a .npz file "
                                   f"(it holds {', '.join(others[:3])})")
        arch = _read_architecture(archive)
        if input_shape is not None and tuple(arch["input_shape"]) != tuple(input_shape):
            raise ModelFormatError(f"this model takes images of shape {tuple(arch['input_shape'])}, "
                                   f"not {tuple(input_shape)}")
        _check_declared_weights(arch["layers"], archive)  # before building: a file cannot ask for what it lacks
        try:
            layers = [layer_from_config(c) for c in arch["layers"]]
            model = Sequential(layers, tuple(arch["input_shape"]), arch.get("preset"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"the model's architecture is invalid: {exc}") from None
        _check_preset_layers(arch)
        if num_classes is not None and model.num_classes != num_classes:
            raise ModelFormatError(f"this model predicts {model.num_classes} classes, not {num_classes}")
        _assign_weights(model, archive)
    return model


def _read_architecture(archive: Archive) -> dict[str, Any]:
    """The file's architecture, checked (format, version, preset, layers, size) before any layer is built."""
    if "architecture" not in archive.members:
        raise ModelFormatError("the .npz file has no 'architecture' entry: it was not saved by pycnn")
    shape, dtype = archive.header("architecture")
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_ARCHITECTURE:
        raise ModelFormatError(f"the model's architecture is not a JSON string of at most {MAX_ARCHITECTURE:,} "
                               f"characters (it is {dtype} of shape {shape})")
    try:
        arch = json.loads(str(archive.read("architecture")))
    except RecursionError:
        raise ModelFormatError("the model's architecture is not valid JSON (it is nested too deeply)") from None
    except ValueError as exc:
        raise ModelFormatError(f"the model's architecture is not valid JSON ({exc})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise ModelFormatError("the .npz file is not a pycnn model (missing format marker)")
    _check_version(arch.get("version", 1))
    _check_preset(arch.get("preset"))
    layers, shape = arch.get("layers"), arch.get("input_shape")
    if not (isinstance(layers, list) and 0 < len(layers) <= MAX_LAYERS and all(isinstance(c, dict) for c in layers)):
        raise ModelFormatError(f"the model's architecture is invalid: layers must be a list of 1 to {MAX_LAYERS} "
                               "layer settings")
    sides_ok = isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) for s in shape)
    if not sides_ok or not all(0 < s <= MAX_SIDE for s in shape):
        raise ModelFormatError(f"the model's architecture is invalid: input_shape must be [H, W, C], each a whole "
                               f"number from 1 to {MAX_SIDE}, got {shape!r}")
    unknown = [c.get("type") for c in layers if not isinstance(c.get("type"), str) or c["type"] not in LAYER_TYPES]
    if unknown:
        raise ModelFormatError(f"the model's architecture is invalid: unknown layer type {unknown[0]!r}; "
                               f"known: {', '.join(LAYER_TYPES)}")
    problem = params_problem(count_params(layers))
    if problem:
        raise ModelFormatError(f"the model file asks for {problem}")
    return arch


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
    name = preset.get("name")
    if not isinstance(name, str) or name not in PRESETS:
        raise ModelFormatError(f"unknown architecture {name!r} in the model file; "
                               f"this pycnn knows {', '.join(PRESETS)}")


def _check_preset_layers(arch: dict[str, Any]) -> None:
    """A file that names a preset must hold that preset's layers for its hyperparameters."""
    if arch.get("preset") is None:
        return
    name, hparams = arch["preset"]["name"], arch["preset"].get("hparams", {})
    try:
        expected = PRESETS[name](**hparams)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"the model file's {name} hyperparameters are invalid: {exc}") from None
    if expected != arch["layers"]:
        raise ModelFormatError(f"the model file says it is a {name} model, but its layers are not "
                               f"{name}'s for its hyperparameters")


def _check_declared_weights(layers: list[dict], archive: Archive) -> None:
    """Every weight array the layer configs call for is there, none else, and none declares more
    numbers than its layer needs or expands like a bomb.

    Read from the zip directory and the ``.npy`` headers alone, before the
    model is built; the exact shapes are compared once it is (its layers
    check their settings first).
    """
    names = layer_names([c["type"] for c in layers])
    expected = {f"{name}.{key}": shape
                for name, c in zip(names, layers, strict=True) for key, shape in param_shapes(c).items()}
    present = set(archive.members) - {"architecture"}
    missing = [name for name in expected if name not in present]
    extra = sorted(present - set(expected))
    if missing or extra:
        raise ModelFormatError(f"the weights do not match the architecture: missing {missing or 'none'}, "
                               f"unexpected {extra or 'none'}")
    for name, shape in expected.items():
        declared, _ = archive.header(name)
        if math.prod(declared) > math.prod(shape):
            raise ModelFormatError(f"weights {name} have shape {declared}, but the architecture needs {shape}")
        archive.check_size(name)


def _check_weight_header(archive: Archive, name: str, shape: tuple[int, ...]) -> None:
    declared, dtype = archive.header(name)
    if declared != shape:
        raise ModelFormatError(f"weights {name} have shape {declared}, but the architecture needs {shape}")
    if dtype.kind != "f":
        raise ModelFormatError(f"weights {name} are not finite floating-point numbers (they are {dtype})")


def _assign_weights(model: Sequential, archive: Archive) -> None:
    """Each array, read after its declared shape is checked, as float32 weights; finite after the cast."""
    for p in model.params():
        _check_weight_header(archive, p.name, p.value.shape)
        raw = archive.read(p.name)
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused below
            value = raw.astype(np.float32)
        if not np.all(np.isfinite(value)):
            overflow = " as float32 (values beyond its range, about 3.4e38)" if np.all(np.isfinite(raw)) else ""
            raise ModelFormatError(f"weights {p.name} are not finite floating-point numbers{overflow}")
        p.value[...] = value
