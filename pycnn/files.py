"""Safe file access: read only regular files, write only where a save cannot destroy anything.

A FIFO blocks a reader forever and a device streams endless bytes, so readers
check :func:`regular_file` first. Writers check :func:`check_save_target`
before the work that produces the data (a training run), then
:func:`write_atomic`: a unique temporary file in the target's folder, fsync,
``os.replace``. Two saves to one path at once then each replace the file with
a complete one, and a failed save leaves the previous file as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable

from .errors import ConfigError, PycnnError

PathLike = str | os.PathLike


def kind_of(mode: int) -> str:
    """What a file with ``st_mode`` is, for messages: "a FIFO", "a character device", ..."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISREG, "a regular file"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def regular_file(path: PathLike, what: str, error: type[PycnnError] = ConfigError) -> str:
    """Return ``path`` as a string if it names a regular file (symbolic links followed).

    Raises ``error`` saying what the path is instead: missing, a folder, a FIFO, a device.
    ``what`` names the file in the message ("model file", "data file").
    """
    where = os.fspath(path)
    try:
        mode = os.stat(where).st_mode
    except FileNotFoundError:
        raise error(f"{what} {where} not found") from None
    except OSError as exc:
        raise error(f"cannot read {what} {where}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what} {where} is {kind_of(mode)}, not a regular file")
    return where


def check_save_target(path: PathLike, protect: Iterable[PathLike] = (), what: str = "the model") -> None:
    """Raise :class:`ConfigError` now if :func:`write_atomic` to ``path`` would fail or destroy something.

    Refused: an empty path, a folder, anything but a regular file (a device, a
    FIFO, a symbolic link, which ``os.replace`` would replace instead of its
    target), a read-only file, and any path that is the same file as one in
    ``protect`` (the inputs of the run). Then creates and removes a temporary
    file in the folder exactly as the save will, so an unwritable folder is
    found before the work starts.
    """
    where = os.fspath(path)
    if not where.strip():
        raise ConfigError(f"cannot save {what} to {where!r}: the path is empty; give a file name such as model.npz")
    refuse = f"cannot save {what} to {where}"
    try:
        info = os.lstat(where)
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as exc:
        raise ConfigError(f"{refuse}: {exc.strerror or exc}") from None
    if info is not None:
        _check_existing(where, info, refuse)
    for other in protect:
        if other is not None and _same_file(where, os.fspath(other)):
            raise ConfigError(f"{refuse}: it is the input file {os.fspath(other)}; choose another path")
    folder = os.path.dirname(os.path.abspath(where))
    if not os.path.isdir(folder):
        raise ConfigError(f"{refuse}: the folder {folder} does not exist")
    try:
        fd, tmp = _temp_beside(where)
    except OSError as exc:
        raise ConfigError(f"{refuse}: {exc.strerror or exc}") from None
    os.close(fd)
    _remove_quietly(tmp)


def _check_existing(where: str, info: os.stat_result, refuse: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{refuse}: it is a folder; give a file name such as {os.path.join(where, 'model.npz')}")
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"{refuse}: it is a symbolic link (to {os.readlink(where)}), which the save would "
                          "replace; give the path of the file itself")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{refuse}: it is {kind_of(info.st_mode)}, not a regular file; choose a file name")
    # Root may write anywhere, so the mode bits are checked as well as access().
    if not info.st_mode & stat.S_IWUSR or not os.access(where, os.W_OK):
        raise ConfigError(f"{refuse}: the file is read-only; make it writable or choose another path")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def write_atomic(path: PathLike, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, or leave it as it was.

    Writes a unique temporary file in the same folder, fsyncs it and renames it
    over ``path``; the temporary file is removed on any failure (also Ctrl-C).
    Raises ``OSError``; the caller says what failed.
    """
    where = os.fspath(path)
    fd, tmp = _temp_beside(where)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode())  # mkstemp makes 0600; open() would have used the umask
        os.replace(tmp, where)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_folder(os.path.dirname(os.path.abspath(where)))


def _temp_beside(where: str) -> tuple[int, str]:
    """A new, unique file next to ``where``: (descriptor, path)."""
    folder, name = os.path.split(os.path.abspath(where))
    return tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")


def _new_file_mode() -> int:
    """0o666 minus the umask, as open() gives a new file; the umask is read without changing it."""
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("Umask:"))
        return 0o666 & ~int(line.split()[1], 8)
    except (OSError, StopIteration, ValueError):
        return 0o644


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable; not every system can open a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
