"""A run as a bundle: the folder a Hub repo holds, written from a run dir and checked,
file by file, before anything in it is used.

    twisterl.json         the manifest: format and version, the env, and every file's sha256 and size
    env.twl               the source (compiled locally on load)
    config.json           the run's config.json
    best.safetensors      the best policy
    metrics.csv, progress.png   the training curves
    README.md             the model card (not covered by the manifest: the Hub's editor may change it)
    index.html, player.*, bundle.json, pkg/, raw/   the WebAssembly player (a static Space)

Checking a folder (`verify_bundle`) refuses, naming the file: a manifest of a newer format,
names that leave the folder, symlinks (except the Hub cache's links into its own blobs),
anything but regular files, file types a bundle never holds (pickles above all), files over
their size limit, files the manifest does not list, and checksums that differ. Only then
are the run's files copied (and hashed again as they are copied) into a run dir of our own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from ..train.rundir import CheckpointError

FORMAT = "twisterl-bundle"
FORMAT_VERSION = 1
MANIFEST = "twisterl.json"
RUN_FILES = ("env.twl", "config.json", "best.safetensors", "metrics.csv")
"""What a bundle's run dir is made of (metrics.csv is optional)."""
REQUIRED = ("env.twl", "config.json", "best.safetensors")
UNLISTED = ("README.md", ".gitattributes")
"""Documents the manifest does not cover: the model card, which the Hub's editor may
change, and the .gitattributes the Hub adds to every new repo. Neither is ever read."""

MiB = 1024 * 1024
# The largest file of each type a bundle may hold; every other type is refused.
SIZE_LIMITS = {".twl": 1 * MiB, ".json": 16 * MiB, ".safetensors": 1024 * MiB, ".csv": 256 * MiB,
               ".png": 32 * MiB, ".md": 1 * MiB, ".html": 4 * MiB, ".js": 16 * MiB, ".css": 4 * MiB,
               ".ts": 4 * MiB, ".wasm": 256 * MiB, ".gitattributes": 1 * MiB}
TOTAL_LIMIT = 2048 * MiB
MAX_FILES = 256
MAX_DEPTH = 3
TEXT_TYPES = {".twl", ".json", ".csv", ".md", ".html", ".js", ".css", ".ts", ".gitattributes"}
PICKLE_TYPES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz", ".h5", ".keras",
                ".zip", ".tar", ".gz"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class BundleError(CheckpointError):
    """A bundle that is not one, is of a newer format, or holds a file it must not: the
    message names the bundle and the file."""


@dataclass
class Verified:
    """A checked bundle folder: where it is, its manifest, and what it is called in messages."""
    folder: Path
    manifest: dict
    where: str


def file_type(name: str) -> str:
    """The type a file is judged by: its suffix (`.gitattributes` for that file)."""
    base = PurePosixPath(name).name
    return ".gitattributes" if base == ".gitattributes" else PurePosixPath(name).suffix.lower()


def check_name(name: str, where: str) -> None:
    """A `BundleError` for a name that is no plain relative path inside the bundle."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{where}: the manifest lists a file with no name ({name!r})")
    parts = name.split("/")
    if (name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts)
            or not all(_NAME.match(p) for p in parts)):
        raise BundleError(f"{where}: the file name {name!r} leaves the bundle or is not a plain relative path "
                          "(no `..`, no absolute paths, letters, digits, `_`, `-` and `.` only)")
    if len(parts) > MAX_DEPTH:
        raise BundleError(f"{where}: {name} is nested deeper than a bundle's files ({MAX_DEPTH} levels)")


def check_type(name: str, size: Optional[int], where: str) -> None:
    """A `BundleError` for a file type a bundle never holds, or a file over its type's limit."""
    kind = file_type(name)
    if kind in PICKLE_TYPES:
        raise BundleError(f"{where}: {name} is a {kind} file, a pickle-based or archive format that can run code "
                          "when loaded; a twisterl bundle holds none (its policy is safetensors)")
    if kind not in SIZE_LIMITS:
        raise BundleError(f"{where}: {name} is of a type a twisterl bundle never holds ({kind or 'no suffix'}; "
                          f"allowed: {', '.join(sorted(SIZE_LIMITS))})")
    if size is not None and size > SIZE_LIMITS[kind]:
        raise BundleError(f"{where}: {name} is {size} bytes, over the limit for a {kind} file "
                          f"({SIZE_LIMITS[kind] // MiB} MiB)")


def check_listing(files: Iterable[tuple[str, Optional[int]]], where: str) -> None:
    """Names and sizes of a repo's files (before any is downloaded) checked like a folder's."""
    total = 0
    count = 0
    for name, size in files:
        count += 1
        check_name(name, where)
        check_type(name, size, where)
        total += size or 0
    if count > MAX_FILES:
        raise BundleError(f"{where} holds {count} files, more than a bundle ever has ({MAX_FILES})")
    if total > TOTAL_LIMIT:
        raise BundleError(f"{where} holds {total} bytes, more than a bundle may ({TOTAL_LIMIT // MiB} MiB)")


# ---------------------------------------------------------------- the manifest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def make_manifest(folder: Path, info: dict) -> dict:
    """The manifest of the files in `folder` (but the unlisted documents), with `info`."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name == MANIFEST or name in UNLISTED:
            continue
        files[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return {"format": FORMAT, "version": FORMAT_VERSION, **info, "files": files}


def read_manifest(folder: Path, where: str, blobs: Optional[Path] = None) -> dict:
    """The manifest of a bundle folder, its format, version and file table checked."""
    path = folder / MANIFEST
    if not _exists(path):
        hint = " (it has config.json: a run dir, which `twisterl push` turns into a bundle)" \
            if _exists(folder / "config.json") else ""
        raise BundleError(f"{where} is not a twisterl bundle: it has no {MANIFEST}{hint}")
    _regular(path, MANIFEST, where, blobs)
    if path.stat().st_size > SIZE_LIMITS[".json"]:
        raise BundleError(f"{where}: {MANIFEST} is over the limit for a .json file")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: {MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(f"{where}: {MANIFEST} is not a twisterl bundle manifest (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{where}: {MANIFEST}: `version` must be a positive int, not {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(f"{where} is a bundle of format version {version}, newer than this twisterl reads "
                          f"(version {FORMAT_VERSION}); upgrade twisterl to load it (pip install -U 'twisterl[hub]')")
    files = data.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{where}: {MANIFEST}: `files` must be an object of file name -> sha256 and size")
    for name, entry in files.items():
        check_name(name, where)
        if name == MANIFEST or name in UNLISTED:
            raise BundleError(f"{where}: {MANIFEST} lists {name}, which a manifest never covers")
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _SHA.match(entry["sha256"])
                and isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool)
                and entry["size"] >= 0):
            raise BundleError(f"{where}: {MANIFEST}: the entry of {name} must be {{\"sha256\": 64 hex digits, "
                              f"\"size\": bytes}}, not {entry!r:.80}")
        check_type(name, entry["size"], where)
    for name in REQUIRED:
        if name not in files:
            raise BundleError(f"{where}: {MANIFEST} does not list {name}, which every bundle has")
    check_listing(((n, e["size"]) for n, e in files.items()), where)
    return data


# ---------------------------------------------------------------- the folder


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _regular(path: Path, name: str, where: str, blobs: Optional[Path]) -> None:
    """A `BundleError` unless `path` is a regular file, or (in the Hub cache, `blobs`) a
    symlink to one of the cache's own blobs."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        target = Path(os.path.realpath(path))
        if blobs is None or target.parent != Path(os.path.realpath(blobs)) or not target.is_file():
            raise BundleError(f"{where}: {name} is a symbolic link; a bundle holds only regular files")
        return
    if not stat.S_ISREG(mode):
        raise BundleError(f"{where}: {name} is not a regular file")


def _sniff(path: Path, name: str, where: str) -> None:
    """Content that contradicts a file's type: a pickle or zip (torch.save) anywhere, text
    that is not UTF-8, a .png or .wasm without its magic number."""
    kind = file_type(name)
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
                                          and kind != ".safetensors"):
        raise BundleError(f"{where}: {name} holds a pickle or a zip archive (as torch.save writes), which can run "
                          "code when loaded; a twisterl bundle holds none")
    if kind == ".png" and head != b"\x89PNG\r\n\x1a\n":
        raise BundleError(f"{where}: {name} is not a PNG image")
    if kind == ".wasm" and not head.startswith(b"\0asm"):
        raise BundleError(f"{where}: {name} is not a WebAssembly module")
    if kind in TEXT_TYPES:
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"{where}: {name} is not UTF-8 text, as a {kind} file must be") from None


def walk(folder: Path, where: str, blobs: Optional[Path] = None) -> dict[str, int]:
    """Every file of a bundle folder (relative name -> size), each checked: a regular file
    of an allowed type and size, with a name inside the folder. The `.cache/huggingface`
    folder that huggingface_hub keeps in a `local_dir` download is skipped."""
    found: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(folder)
        for d in list(dirnames):
            name = (rel_dir / d).as_posix()
            if name == ".cache" and not os.path.islink(base / d) and set(os.listdir(base / d)) <= {"huggingface"}:
                dirnames.remove(d)  # huggingface_hub's download metadata (local_dir), never read
                continue
            if os.path.islink(base / d):
                raise BundleError(f"{where}: {name} is a symbolic link; a bundle holds only regular files")
        for f in filenames:
            name = (rel_dir / f).as_posix()
            check_name(name, where)
            _regular(base / f, name, where, blobs)
            size = os.stat(base / f).st_size
            check_type(name, size, where)
            found[name] = size
            if len(found) > MAX_FILES:
                raise BundleError(f"{where} holds more files than a bundle ever has ({MAX_FILES})")
    return found


def verify_bundle(folder: Path, where: str, blobs: Optional[Path] = None) -> Verified:
    """Check a bundle folder (see the module doc); `where` names it in messages, `blobs`
    is the Hub cache's blob folder its files may link to."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"{where} is not a folder")
    manifest = read_manifest(folder, where, blobs)
    found = walk(folder, where, blobs)
    listed = manifest["files"]
    for name, size in sorted(found.items()):
        if name == MANIFEST or name in UNLISTED:
            continue
        if name not in listed:
            raise BundleError(f"{where}: {name} is not in the manifest ({MANIFEST}), so it has no checksum; "
                              "a bundle holds only the files its manifest lists (push the run again to rebuild it)")
    for name, entry in sorted(listed.items()):
        if name not in found:
            raise BundleError(f"{where}: {name} is listed in the manifest but missing")
        if found[name] != entry["size"]:
            raise BundleError(f"{where}: {name} is {found[name]} bytes, not the {entry['size']} its manifest "
                              "records: it is truncated or was changed")
        _sniff(folder / name, name, where)
        if sha256_file(folder / name) != entry["sha256"]:
            raise BundleError(f"{where}: {name} does not match its sha256 in the manifest: it is corrupt or was "
                              "changed")
    return Verified(folder, manifest, where)


def materialize(bundle: Verified, dest: Path) -> Path:
    """The bundle's run files copied into `dest` (a run dir of our own), each hashed again
    from the bytes copied. An existing `dest` whose files match is reused."""
    listed = bundle.manifest["files"]
    names = [n for n in RUN_FILES if n in listed]
    if dest.is_dir() and all((dest / n).is_file() and sha256_file(dest / n) == listed[n]["sha256"] for n in names):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for name in names:
            h = hashlib.sha256()
            with open(bundle.folder / name, "rb") as src, open(tmp / name, "wb") as out:
                for chunk in iter(lambda: src.read(MiB), b""):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != listed[name]["sha256"]:
                raise BundleError(f"{bundle.where}: {name} changed while it was being read")
        (tmp / MANIFEST).write_text(json.dumps(bundle.manifest, indent=2, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
