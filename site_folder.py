"""The folder build_site.py writes: which folders it may fill, and how a build lands in one.

A folder is adopted only when it is new, empty, or holds a manifest.json that
build_site.py wrote (it says so in "generator"). A build is staged in a hidden
temporary sibling and lands at the end: a first build is one rename, so an
interrupted build leaves nothing behind; a rebuild moves the new files into
place, then removes only the files the previous manifest listed and no longer
belong to the site. Everything else in the folder (.git, CNAME, .nojekyll, a
user's notes) is kept, and reported.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

GENERATOR = "pycnn build_site"
MANIFEST = "manifest.json"
SERVICE_WORKER = "sw.js"
# The keys every manifest of build_site.py has held, also before it wrote "generator".
LEGACY_KEYS = {"pycnn_wheel", "pyodide_version", "numpy_wheel", "mnist", "files", "version"}


class BuildError(Exception):
    """A build problem the user can fix; its message is one line saying how."""


def previous_build(out: Path) -> set[str] | None:
    """The files (relative POSIX paths) the previous build left in ``out``; None for a new or empty folder.

    Raises BuildError for a folder the build must not fill or cannot write.
    """
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out} is a file: choose another --out")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise BuildError(f"cannot build into {out}: {existing} is a file, not a folder; choose another --out")
    for folder in ((out, out.parent) if existing == out else (existing,)):
        if not os.access(folder, os.W_OK) or not folder.stat().st_mode & stat.S_IWUSR:
            raise BuildError(f"cannot build into {out}: {folder} is read-only; "
                             "make it writable or choose another --out")
    if existing != out or not any(out.iterdir()):
        return None
    files = _listed_files(out / MANIFEST)
    if files is None:
        why = f"its {MANIFEST} was not written by build_site.py" if (out / MANIFEST).exists() else f"no {MANIFEST}"
        raise BuildError(f"{out} exists and is not a pycnn site ({why}): choose an empty or new folder for --out")
    return files | {MANIFEST, SERVICE_WORKER}


def _listed_files(path: Path) -> set[str] | None:
    """The "files" of a manifest build_site.py wrote; None for any other file (or none)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    if manifest.get("generator") != GENERATOR and not LEGACY_KEYS <= set(manifest):
        return None
    files = set(manifest["files"])
    # Only paths inside the folder: a rebuild removes what is listed.
    if not all(isinstance(f, str) and _inside(f) for f in files):
        return None
    return files


def _inside(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(rel) and "\\" not in rel and not path.is_absolute() and ".." not in path.parts


class Staging:
    """A hidden sibling of ``out`` that receives every file of the build, then lands in ``out``.

    Files are staged by their path in the site (``rel``, POSIX). A file the
    previous build wrote and that has not changed is hard-linked from ``out``
    instead of being copied again, so a rebuild stays quick and keeps the
    file's mtime.
    """

    def __init__(self, out: Path, previous: set[str] | None) -> None:
        self.out, self.previous = out, previous
        out.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
        self.dir.chmod(0o755)  # mkdtemp makes 0700; the site must be readable by any web server
        self.files: set[str] = set()

    def copy(self, src: Path, rel: str) -> bool:
        """Stage src as rel (keeping mtime), reusing the previous build's copy if its size and mtime match."""
        s, old = src.stat(), self._old(rel)
        if old is not None:
            d = old.stat()
            if d.st_size == s.st_size and int(d.st_mtime) == int(s.st_mtime):
                self._reuse(rel)
                return False
        shutil.copy2(src, self._new(rel))
        return True

    def copy_tree(self, src: Path, skip: tuple[str, ...] = ()) -> None:
        """Stage every file under src but hidden ones, those in skip, and the site itself (an --out inside src)."""
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if (path.is_file() and not any(part.startswith(".") for part in rel.parts)
                    and rel.as_posix() not in skip and not path.is_relative_to(self.out)):
                self.copy(path, rel.as_posix())

    def gzip(self, src: Path, rel: str, stamps: dict) -> bool:
        """Stage rel = gzip(src), reusing the previous build's file if `stamps` says it was made from this src.

        stamps maps the file's path in the site to "<src size> <src mtime> <dst size> <dst mtime>"; it
        is kept in the cache, not in the site, so nothing extra gets published.
        """
        s, old, key = src.stat(), self._old(rel), str(self.out / rel)
        if old is not None:
            d = old.stat()
            if stamps.get(key) == f"{s.st_size} {int(s.st_mtime)} {d.st_size} {int(d.st_mtime)}":
                self._reuse(rel)
                return False
        dst = self._new(rel)
        with open(src, "rb") as fin, open(dst, "wb") as raw:
            # mtime=0 and no file name keep the output byte-identical between builds.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        d = dst.stat()  # the rename into the site keeps size and mtime
        stamps[key] = f"{s.st_size} {int(s.st_mtime)} {d.st_size} {int(d.st_mtime)}"
        return True

    def write(self, rel: str, text: str) -> None:
        """Stage a file holding text (the previous build's file, untouched, if it holds the same)."""
        old = self._old(rel)
        if old is not None and old.read_text() == text:
            self._reuse(rel)
        else:
            self._new(rel).write_text(text)

    def staged(self, rel: str) -> Path:
        """The staged file rel, to read."""
        return self.dir / rel

    def _new(self, rel: str) -> Path:
        self.files.add(rel)
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _old(self, rel: str) -> Path | None:
        path = self.out / rel
        return path if self.previous is not None and rel in self.previous and path.is_file() else None

    def _reuse(self, rel: str) -> None:
        old, new = self._old(rel), self._new(rel)
        try:
            os.link(old, new)
        except OSError:  # no hard links here (another file system): copy
            shutil.copy2(old, new)

    def land(self) -> list[str]:
        """Move the build into ``out``; return what ``out`` holds besides the build (kept)."""
        if self.previous is None:
            if self.out.exists():
                self.out.rmdir()  # empty: checked by previous_build
            os.rename(self.dir, self.out)
            return []
        clashes = sorted(rel for rel in self.files - self.previous if (self.out / rel).exists())
        if clashes:
            raise BuildError(f"{self.out / clashes[0]} is not a file of the previous build, and this build would "
                             "replace it: move it away and build again")
        # The manifest last: until it lands, the folder is the previous build plus new files.
        for rel in sorted(self.files, key=lambda r: (r == MANIFEST, r == SERVICE_WORKER, r)):
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, self.out / rel)
        for rel in sorted(self.previous - self.files):
            _remove_with_empty_parents(self.out, rel)
        return _others(self.out, self.files)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _remove_with_empty_parents(out: Path, rel: str) -> None:
    path = out / rel
    if path.is_file() or path.is_symlink():
        path.unlink()
    for parent in path.parents:
        if parent == out or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()


def _others(folder: Path, ours: set[str], prefix: str = "") -> list[str]:
    """Entries of ``folder`` that are not the build's files: "CNAME", ".git/", "data/notes.txt"."""
    found = []
    for entry in sorted(folder.iterdir()):
        rel = prefix + entry.name
        if rel in ours:
            continue
        if entry.is_dir() and not entry.is_symlink() and any(f.startswith(rel + "/") for f in ours):
            found += _others(entry, ours, rel + "/")
        else:
            found.append(rel + ("/" if entry.is_dir() else ""))
    return found
