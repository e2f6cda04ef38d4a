"""Dataset downloads against a real HTTP server on 127.0.0.1: fetch, unpack, convert, and every refusal path."""

import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from utils.downloads import (
    DownloadError,
    UnsafeArchiveError,
    fetch_url,
    parse_download_spec,
    unpack_archive,
    url_filename,
)
from utils.general import check_dataset, yaml_save


def png_bytes(w: int = 32, h: int = 24) -> bytes:
    """A small real PNG image."""
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 30)).save(buf, format="PNG")
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive holding the given member names and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    """A tar.gz archive with files and optional links {name: (tarfile.SYMTYPE or LNKTYPE, target)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            t.addfile(info)
    return buf.getvalue()


class Server:
    """A threaded HTTP server on 127.0.0.1 serving in-memory files, a truncated body and a silent endpoint."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server hook name)
                server.requests.append(self.path)
                if self.path.startswith("/silent/"):
                    server.release.wait(10)  # never answers while the test waits
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                short = self.path.startswith("/short/")
                self.send_header("Content-Length", str(len(body) * 2 if short else len(body)))
                self.end_headers()
                self.wfile.write(body)  # the short endpoint promises twice what it sends, then closes

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_yaml(tmp_path: Path, **cfg) -> Path:
    """A dataset YAML in tmp/cfg whose path ../datasets/<name> resolves to tmp/datasets/<name>."""
    f = tmp_path / "cfg" / "d.yaml"
    f.parent.mkdir(exist_ok=True)
    yaml_save(f, {"names": ["thing"], **cfg})
    return f


def test_zip_download_unpacks_beside_path_and_yaml_resolves(tmp_path, server):
    server.files["/mini.zip"] = zip_bytes({"mini/images/train/a.png": png_bytes(),
                                           "mini/images/val/b.png": png_bytes(),
                                           "mini/labels/train/a.txt": b"0 0.5 0.5 0.2 0.2\n"})
    f = write_yaml(tmp_path, path="../datasets/mini", train="images/train", val="images/val",
                   download=server.url + "/mini.zip")
    data = check_dataset(f, timeout=5)
    root = tmp_path / "datasets" / "mini"
    assert data["path"] == str(root) and data["val"] == str(root / "images" / "val")
    assert (root / "images" / "train" / "a.png").read_bytes() == png_bytes()
    assert (root / "labels" / "train" / "a.txt").read_text() == "0 0.5 0.5 0.2 0.2\n"
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == ["mini"]  # archive removed, no .part left
    assert server.requests == ["/mini.zip"]
    check_dataset(f, timeout=5)  # found now: nothing is fetched again
    assert server.requests == ["/mini.zip"]


def test_tar_gz_with_dir_unpacks_inside_path(tmp_path, server):
    server.files["/flat.tar.gz"] = tar_bytes({"images/train/a.png": png_bytes(), "images/val/b.png": png_bytes()})
    f = write_yaml(tmp_path, path="../datasets/flat", train="images/train", val="images/val",
                   download=[{"url": server.url + "/flat.tar.gz", "dir": "."}])
    data = check_dataset(f, timeout=5)
    assert Path(data["val"], "b.png").read_bytes() == png_bytes()
    assert not (tmp_path / "datasets" / "flat" / "flat.tar.gz").exists()


def test_download_then_named_converter_runs(tmp_path, server):
    """A VisDrone-layout zip is fetched, unpacked into path and converted by the project's 'visdrone' function."""
    ann = b"4,6,8,4,1,4,0,0\n0,0,5,5,0,0,0,0\n"  # a car (class 4 -> 3) and an ignored region
    members = {f"VisDrone2019-DET-{s}/{k}": v for s in ("train", "val")
               for k, v in (("images/0001.jpg", png_bytes(32, 16)), ("annotations/0001.txt", ann))}
    server.files["/vd.zip"] = zip_bytes(members)
    f = write_yaml(tmp_path, path="../datasets/VisDrone", train="VisDrone2019-DET-train/images",
                   val="VisDrone2019-DET-val/images", download=[{"url": server.url + "/vd.zip", "dir": "."}],
                   convert="visdrone")
    check_dataset(f, timeout=5)
    label = tmp_path / "datasets" / "VisDrone" / "VisDrone2019-DET-val" / "labels" / "0001.txt"
    # box x 4..12 of 32, y 6..10 of 16 -> centre (8/32, 8/16), size (8/32, 4/16)
    assert label.read_text() == "3 0.250000 0.500000 0.250000 0.250000\n"


def test_zip_slip_is_refused_and_nothing_is_written(tmp_path, server):
    server.files["/evil.zip"] = zip_bytes({"evil/images/val/a.png": png_bytes(), "../../escaped.txt": b"pwned"})
    f = write_yaml(tmp_path, path="../datasets/evil", train="images/val", val="images/val",
                   download=server.url + "/evil.zip")
    with pytest.raises(UnsafeArchiveError, match=r"member '\.\./\.\./escaped\.txt' would be written outside"):
        check_dataset(f, timeout=5)
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "datasets" / "evil").exists()


@pytest.mark.parametrize("name", ["/abs/escaped.txt", "C:/escaped.txt"])
def test_absolute_members_are_refused(tmp_path, name):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({name: b"x"}))
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        unpack_archive(archive, tmp_path / "out")


@pytest.mark.parametrize("kind,target", [(tarfile.SYMTYPE, "../../outside"), (tarfile.SYMTYPE, "/etc/passwd"),
                                         (tarfile.LNKTYPE, "../outside")])
def test_tar_links_pointing_outside_are_refused(tmp_path, kind, target):
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(tar_bytes({"ds/ok.txt": b"fine"}, links={"ds/link": (kind, target)}))
    with pytest.raises(UnsafeArchiveError, match=r"member 'ds/link' is a (symbolic|hard) link"):
        unpack_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "ds").exists()


def test_tar_link_inside_is_allowed(tmp_path):
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(tar_bytes({"ds/ok.txt": b"fine"}, links={"ds/alias.txt": (tarfile.SYMTYPE, "ok.txt")}))
    unpack_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "ds" / "alias.txt").read_text() == "fine"


def test_unreachable_url_names_url_and_folder(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/data.zip"
    f = write_yaml(tmp_path, path="../datasets/off", train="images/train", val="images/val", download=url)
    with pytest.raises(DownloadError) as e:
        check_dataset(f, timeout=2)
    msg = str(e.value)
    assert url in msg and str(tmp_path / "datasets") in msg and "by hand" in msg
    assert not list((tmp_path / "datasets").glob("*.part"))


def test_silent_server_times_out(tmp_path, server):
    url = server.url + "/silent/data.zip"
    f = write_yaml(tmp_path, path="../datasets/slow", train="images/train", val="images/val", download=url)
    with pytest.raises(DownloadError, match=r"/silent/data\.zip: download failed \((timeout|TimeoutError)"):
        check_dataset(f, timeout=0.5)
    assert not list((tmp_path / "datasets").glob("data.zip*"))


def test_short_body_leaves_no_partial_file(tmp_path, server):
    server.files["/short/data.zip"] = b"x" * 1000
    with pytest.raises(DownloadError, match="incomplete download, received 1000 of 2000 bytes"):
        fetch_url(server.url + "/short/data.zip", tmp_path / "data.zip", timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_download_error(tmp_path, server):
    with pytest.raises(DownloadError, match=r"/nothing\.zip: download failed \(HTTPError: Not Found"):
        fetch_url(server.url + "/nothing.zip", tmp_path / "nothing.zip", timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_code_in_download_is_refused_and_not_run(tmp_path, server):
    marker = tmp_path / "ran.txt"
    code = f"from pathlib import Path\nPath('{marker}').write_text('ran')\n"
    f = write_yaml(tmp_path, path="../datasets/code", train="images/train", val="images/val", download=code)
    with pytest.raises(ValueError, match="'download:' must be an http\\(s\\) URL.*never run"):
        check_dataset(f, timeout=2)
    f = write_yaml(tmp_path, path="../datasets/code", train="images/train", val="images/val",
                   download=f"bash data/scripts/get.sh && touch {marker}")
    with pytest.raises(ValueError, match="never run"):
        check_dataset(f, timeout=2)
    assert not marker.exists() and server.requests == []


def test_unknown_converter_fails_before_downloading(tmp_path, server):
    server.files["/x.zip"] = zip_bytes({"x/images/val/a.png": png_bytes()})
    f = write_yaml(tmp_path, path="../datasets/x", train="images/val", val="images/val",
                   download=server.url + "/x.zip", convert="os.system")
    with pytest.raises(ValueError, match="unknown converter 'convert: os.system', expected one of voc, visdrone"):
        check_dataset(f, timeout=5)
    assert server.requests == []


def test_no_autodownload_names_urls_folder_and_converter(tmp_path, server):
    f = write_yaml(tmp_path, path="../datasets/VOC", train="images/train", val="images/val",
                   download=[{"url": server.url + "/v.zip", "dir": "images"}], convert="voc")
    with pytest.raises(FileNotFoundError) as e:
        check_dataset(f, autodownload=False)
    msg = str(e.value)
    assert f"Place the data in {tmp_path / 'datasets' / 'VOC'} by hand" in msg and server.url + "/v.zip" in msg
    assert "python -m utils.convert voc" in msg and server.requests == []


@pytest.mark.parametrize("spec,match", [({"url": "https://h/a.zip", "dir": "../up"}, "must be a folder inside"),
                                        ({"url": "https://h/a.zip", "dir": "/abs"}, "must be a folder inside"),
                                        ("ftp://h/a.zip", "must be an http"), (["https://h/a.zip", 3], "got '3'")])
def test_download_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_download_spec(spec, "x.yaml")


def test_download_spec_forms():
    assert parse_download_spec("https://h/a.zip") == [("https://h/a.zip", None)]
    assert parse_download_spec(["https://h/a.zip", {"url": "http://h/b.tar", "dir": "images"}]) == [
        ("https://h/a.zip", None), ("http://h/b.tar", "images")]
    assert url_filename("https://h/data%20set/patch%201.tar.gz?x=1") == "patch 1.tar.gz"
    with pytest.raises(ValueError, match="cannot tell a file name"):
        url_filename("https://h/")


def test_corrupt_archive_is_removed_and_named(tmp_path, server):
    server.files["/bad.zip"] = b"this is not a zip file"
    f = write_yaml(tmp_path, path="../datasets/bad", train="images/train", val="images/val",
                   download=server.url + "/bad.zip")
    with pytest.raises(DownloadError, match=r"bad\.zip from http://127\.0\.0\.1:\d+/bad\.zip is not a readable"):
        check_dataset(f, timeout=5)
    assert not (tmp_path / "datasets" / "bad.zip").exists()


def test_second_run_fetches_only_what_failed(tmp_path, server):
    server.files["/part1.zip"] = zip_bytes({"two/images/train/a.png": png_bytes()})
    f = write_yaml(tmp_path, path="../datasets/two", train="images/train", val="images/val",
                   download=[server.url + "/part1.zip", server.url + "/part2.zip"])
    with pytest.raises(DownloadError, match="part2.zip: download failed"):
        check_dataset(f, timeout=5)
    root = tmp_path / "datasets" / "two"
    assert (root / "images" / "train" / "a.png").exists() and (root / ".downloaded").read_text().count("\n") == 1
    server.files["/part2.zip"] = zip_bytes({"two/images/val/b.png": png_bytes()})
    check_dataset(f, timeout=5)
    assert server.requests == ["/part1.zip", "/part2.zip", "/part2.zip"]
