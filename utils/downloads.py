"""Dataset downloads that run no code from the YAML: fetch archives over HTTP(S), unpack them safely, convert."""

from __future__ import annotations

import http.client
import os
import socket
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from utils import LOGGER, TQDM_BAR_FORMAT

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
DEFAULT_TIMEOUT = 30.0  # seconds without an answer (connect or between two reads) before a download gives up
CHUNK = 1 << 20  # bytes per read
DONE_FILE = ".downloaded"  # in the dataset root: one line per URL fetched and unpacked


class DownloadError(RuntimeError):
    """A dataset file could not be fetched, verified or unpacked; the message says what to place where by hand."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the folder it is unpacked into (zip-slip) or is not a plain file/folder."""


def parse_download_spec(spec, file: str = "dataset YAML") -> list[tuple[str, str | None]]:
    """The `download:` value as [(url, subdir or None)]: a URL, a list of URLs, or {url: URL, dir: folder in path}."""
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    out = []
    for item in items:
        url, subdir = (item.get("url"), item.get("dir", "")) if isinstance(item, dict) else (item, None)
        if not isinstance(url, str) or "\n" in url.strip() or urlparse(url.strip()).scheme not in ("http", "https"):
            shown = str(url).strip().splitlines()[0][:80] if str(url).strip() else repr(url)
            raise ValueError(
                f"{file}: 'download:' must be an http(s) URL of an archive, a list of them, or "
                f"{{url: URL, dir: folder}}; got {shown!r}. Code in 'download:' (Python or shell, as YOLOv5 v7.0 "
                "allowed) is never run here: name a converter with 'convert:' instead (see README, Datasets)")
        if subdir is not None:
            p = PurePosixPath(str(subdir))
            if p.is_absolute() or ".." in p.parts:
                raise ValueError(f"{file}: 'download:' dir {subdir!r} must be a folder inside the dataset path")
        out.append((url.strip(), None if subdir is None else str(subdir)))
    return out


def url_filename(url: str) -> str:
    """The file name a URL points at (last path segment, percent-decoded), refusing names that are paths."""
    name = unquote(PurePosixPath(urlparse(url).path).name)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{url}: cannot tell a file name from this URL")
    return name


def fetch_url(url: str, dst: str | Path, timeout: float = DEFAULT_TIMEOUT, progress: bool = True) -> Path:
    """Download url to dst through dst.part, checking the byte count against Content-Length before the rename."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    received, expected = 0, None
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "yolov5-csppc"})
        with urllib.request.urlopen(req, timeout=timeout) as r, open(part, "wb") as f:
            length = r.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=f"Downloading {dst.name}",
                      bar_format=TQDM_BAR_FORMAT, disable=not progress) as bar:
                while chunk := r.read(CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError, OSError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"{url}: download failed ({type(e).__name__}: {reason})") from e
    except BaseException:  # Ctrl-C and the like: still leave no partial file behind
        part.unlink(missing_ok=True)
        raise
    if expected is not None and received != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: incomplete download, received {received} of {expected} bytes")
    os.replace(part, dst)
    return dst


def _inside(root: Path, target: Path) -> bool:
    """True when target (already resolved) is root or below it."""
    return target == root or root in target.parents


def _member_target(root: Path, name: str, archive: Path) -> Path:
    """Where an archive member lands, refusing absolute names, drive letters and paths that climb out of root."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member '{name}' has an absolute path, refusing to unpack")
    target = (root / posix).resolve()
    if not _inside(root, target):
        raise UnsafeArchiveError(f"{archive}: member '{name}' would be written outside {root}, refusing to unpack")
    return target


def _check_zip(z: zipfile.ZipFile, root: Path, archive: Path) -> None:
    """Refuse the whole zip before writing anything if any member escapes root or is a symlink."""
    for info in z.infolist():
        _member_target(root, info.filename, archive)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(f"{archive}: member '{info.filename}' is a symbolic link, refusing to unpack")


def _check_tar(t: tarfile.TarFile, root: Path, archive: Path) -> None:
    """Refuse the whole tar before writing anything if a member or link target escapes root, or is a device."""
    for m in t.getmembers():
        target = _member_target(root, m.name, archive)
        if m.issym() or m.islnk():
            link = m.linkname.replace("\\", "/")
            base = target.parent if m.issym() else root  # symlinks are relative to their folder, hard links to root
            if link.startswith("/") or not _inside(root, (base / link).resolve()):
                kind = "symbolic" if m.issym() else "hard"
                raise UnsafeArchiveError(f"{archive}: member '{m.name}' is a {kind} link to '{m.linkname}' "
                                         f"outside {root}, refusing to unpack")
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member '{m.name}' is a device or pipe, refusing to unpack")


def is_archive(path: str | Path) -> bool:
    """True for the archive types unpack_archive handles (by name)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def unpack_archive(archive: str | Path, dst: str | Path) -> Path:
    """Unpack a zip, tar or tar.gz into dst after checking that every member stays inside dst (zip-slip)."""
    archive, root = Path(archive), Path(dst)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            _check_zip(z, root, archive)
            z.extractall(root)
    elif name.endswith((".tar", ".tar.gz", ".tgz")):
        with tarfile.open(archive) as t:
            _check_tar(t, root, archive)
            t.extractall(root, filter="data")  # the stdlib filter as a second guard (also drops setuid bits)
    else:
        raise ValueError(f"{archive}: not a zip, tar or tar.gz archive")
    return root


def download_dataset(data: dict, file: str = "dataset YAML", timeout: float = DEFAULT_TIMEOUT,
                     progress: bool = True) -> None:
    """Fetch every `download:` entry of a checked dataset dict, unpack archives and run its `convert:` function."""
    from utils.convert import get_converter  # lazy: the converters import heavier modules (cv2, PIL)

    root = Path(data["path"])
    entries = parse_download_spec(data["download"], file)
    convert = get_converter(data["convert"], file) if data.get("convert") else None  # unknown name: fail first
    state = root / DONE_FILE  # URLs unpacked by earlier runs, so a failure halfway does not refetch everything
    done = set(state.read_text().split()) if state.exists() else set()
    for url, subdir in entries:
        dst_dir = root.parent if subdir is None else root / subdir  # a bare URL unpacks beside path, as in YOLOv5
        if url in done:
            LOGGER.info(f"Skipping {url}: unpacked by an earlier run (remove {state} to fetch it again)")
            continue
        target = dst_dir / url_filename(url)
        LOGGER.info(f"Dataset not found at {root}, downloading {url} to {dst_dir}...")
        if not target.exists():  # a complete earlier download is reused: files are renamed only when complete
            try:
                fetch_url(url, target, timeout=timeout, progress=progress)
            except DownloadError as e:
                raise DownloadError(f"{file}: {e}. Download it by hand and unpack it into {dst_dir}, "
                                    f"so that the dataset is found at {root}") from e
        if is_archive(target):
            try:
                unpack_archive(target, dst_dir)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
                target.unlink()  # a corrupt archive is fetched again next time instead of being reused
                raise DownloadError(f"{file}: {target} from {url} is not a readable archive ({e}); removed it, "
                                    f"run again or unpack the data into {dst_dir} by hand") from e
            target.unlink()
        root.mkdir(parents=True, exist_ok=True)
        with open(state, "a") as f:
            f.write(url + "\n")
    if convert is not None:
        LOGGER.info(f"Converting {root} with the '{data['convert']}' converter...")
        convert(root)


def missing_data_hint(data: dict) -> str:
    """What a user can do about a missing dataset: where to put it, which URLs, which converter to run."""
    root, conv = Path(data["path"]), data.get("convert")
    hint = f"Place the data in {root} by hand"
    if data.get("download"):
        try:
            urls = [u for u, _ in parse_download_spec(data["download"])]
            hint += f", or let check_dataset download it (autodownload) from {', '.join(urls[:3])}"
            hint += f" and {len(urls) - 3} more" if len(urls) > 3 else ""
        except ValueError:
            hint += " ('download:' holds code, which this project never runs)"
    if conv:
        hint += f"; then convert it with: python -m utils.convert {conv} {root}"
    return hint
