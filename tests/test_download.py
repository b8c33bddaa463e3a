"""download_corpus against a real HTTP server on 127.0.0.1, with small in-memory files."""
from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adelabel.corpus import download
from adelabel.corpus.ade import AE_FILE, DOSE_FILE, NEG_FILE
from adelabel.corpus.download import CORPUS_FILES, DEFAULT_BASE_URL, download_corpus
from adelabel.errors import AdelabelError

TIMEOUT = 2.0

FIRST = ("a.rel", b"first file\nwith two lines\n")
SECOND = ("b.txt", b"second file, a little longer than the first one\n" * 20)


def spec(*items: tuple[str, bytes]) -> dict[str, tuple[str, int]]:
    return {name: (hashlib.sha256(body).hexdigest(), len(body)) for name, body in items}


class Server:
    """A ThreadingHTTPServer whose routes and misbehaviours each test sets."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.truncate: set[str] = set()   # send the full Content-Length, then half the body
        self.stall: set[str] = set()      # send headers, then wait until teardown
        self.no_length: set[str] = set()  # omit Content-Length; the body ends when the connection does
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                body = server.routes.get(name)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                if name not in server.no_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.stall:
                    self.wfile.flush()
                    server.release.wait(10)
                    return
                if name in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/corpus/"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.routes = dict([FIRST, SECOND])
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def fetch(server: Server, tmp_path: Path) -> Callable[..., list[Path]]:
    dest = tmp_path / "ade-v2"

    def run(files: dict[str, tuple[str, int]] | None = None, **kw) -> list[Path]:
        kw.setdefault("timeout", TIMEOUT)
        return download_corpus(dest, base_url=server.url, files=files or spec(FIRST, SECOND), **kw)

    run.dest = dest  # type: ignore[attr-defined]
    return run


def names_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_success_writes_files_and_no_temp(fetch, server: Server) -> None:
    lines: list[str] = []
    paths = fetch(progress=lines.append)
    dest = fetch.dest
    assert paths == [dest / FIRST[0], dest / SECOND[0]]
    assert (dest / FIRST[0]).read_bytes() == FIRST[1]
    assert (dest / SECOND[0]).read_bytes() == SECOND[1]
    assert names_in(dest) == {FIRST[0], SECOND[0]}
    assert len(lines) == 2 and lines[0].startswith(FIRST[0]) and "sha256 ok" in lines[0]


def test_files_are_readable_as_the_umask_allows_and_a_killed_download_is_swept(fetch, server: Server) -> None:
    """mkstemp makes a file private: the corpus is readable by whoever may read its folder; and the
    .part file a killed download left goes at the next one."""
    import os

    fetch.dest.mkdir()
    (fetch.dest / f".{FIRST[0]}.abc123.part").write_bytes(b"half")
    old = os.umask(0o022)
    try:
        fetch()
    finally:
        os.umask(old)
    assert (fetch.dest / FIRST[0]).stat().st_mode & 0o777 == 0o644
    assert names_in(fetch.dest) == {FIRST[0], SECOND[0]}


def test_a_file_in_the_folder_s_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(AdelabelError, match="afile: is a file, not a folder"):
        download_corpus(tmp_path / "afile", base_url="http://127.0.0.1:9/", files={"a": ("0" * 64, 1)})


def test_present_file_is_skipped_unless_forced(fetch, server: Server) -> None:
    fetch()
    server.requests.clear()
    lines: list[str] = []
    fetch(progress=lines.append)
    assert server.requests == []
    assert all("skipped" in line for line in lines) and len(lines) == 2

    fetch(force=True)
    assert sorted(server.requests) == sorted([FIRST[0], SECOND[0]])


def test_present_file_with_other_content_is_refused_unless_forced(fetch, server: Server) -> None:
    """A copy of another version (or the user's edit) is not silently replaced: refused, naming it,
    before anything is fetched; --force replaces it."""
    fetch.dest.mkdir(parents=True)
    other = fetch.dest / SECOND[0]
    other.write_bytes(b"X" * len(SECOND[1]))   # same size, so only the hash can tell
    with pytest.raises(AdelabelError, match=f"{SECOND[0]}: present, but not the pinned version.*--force"):
        fetch()
    assert other.read_bytes() == b"X" * len(SECOND[1])
    assert server.requests == [] and names_in(fetch.dest) == {SECOND[0]}
    fetch(force=True)
    assert other.read_bytes() == SECOND[1]
    assert server.requests == [FIRST[0], SECOND[0]]


def test_hash_mismatch_refused_and_earlier_file_kept(fetch, server: Server) -> None:
    bad = bytearray(SECOND[1])
    bad[5] ^= 0xFF
    server.routes[SECOND[0]] = bytes(bad)   # same length: only the checksum catches it
    with pytest.raises(AdelabelError) as info:
        fetch()
    message = str(info.value)
    assert SECOND[0] in message and server.url in message
    assert spec(SECOND)[SECOND[0]][0] in message
    assert hashlib.sha256(bad).hexdigest() in message
    assert names_in(fetch.dest) == {FIRST[0]}
    assert (fetch.dest / FIRST[0]).read_bytes() == FIRST[1]


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "no-content-length"])
def test_wrong_size_refused(fetch, server: Server, announce: bool) -> None:
    server.routes[SECOND[0]] = SECOND[1] + b"extra"
    if not announce:
        server.no_length.add(SECOND[0])
    # The size is what refuses it (announced, or counted as it comes), before any checksum is taken.
    size = len(SECOND[1])
    why = f"announces {size + 5:,} bytes, expected {size:,}" if announce else f"sent more than the expected {size:,} bytes"
    with pytest.raises(AdelabelError, match=rf"^{re.escape(SECOND[0])}: .*{why}"):
        fetch()
    assert names_in(fetch.dest) == {FIRST[0]}


def test_http_404(fetch, server: Server) -> None:
    del server.routes[SECOND[0]]
    with pytest.raises(AdelabelError) as info:
        fetch()
    message = str(info.value)
    assert "404" in message and SECOND[0] in message and server.url in message
    assert names_in(fetch.dest) == {FIRST[0]}


def test_connection_closed_mid_body(fetch, server: Server) -> None:
    server.truncate.add(SECOND[0])
    with pytest.raises(AdelabelError) as info:
        fetch()
    assert SECOND[0] in str(info.value) and "closed" in str(info.value)
    assert names_in(fetch.dest) == {FIRST[0]}


def test_timeout_while_waiting_for_body(fetch, server: Server) -> None:
    server.stall.add(FIRST[0])
    with pytest.raises(AdelabelError) as info:
        fetch(timeout=0.3)
    assert FIRST[0] in str(info.value) and "timed out" in str(info.value)
    assert names_in(fetch.dest) == set()


def test_server_not_listening(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Closed again: connecting to it is refused.
    url = f"http://127.0.0.1:{port}/"
    dest = tmp_path / "out"
    with pytest.raises(AdelabelError) as info:
        download_corpus(dest, base_url=url, files=spec(FIRST), timeout=TIMEOUT)
    assert FIRST[0] in str(info.value) and url in str(info.value)
    assert not dest.exists()  # the folder it made for them goes with the failure
    with pytest.raises(AdelabelError, match=f"cannot reach {re.escape(url)}"):
        download_corpus(dest / "a" / "b", base_url=url, files=spec(FIRST), timeout=TIMEOUT)
    assert not dest.exists()  # and so do the folders above it that it made
    dest.mkdir()  # one that was there stays
    with pytest.raises(AdelabelError, match=f"cannot reach {re.escape(url)}"):
        download_corpus(dest, base_url=url, files=spec(FIRST), timeout=TIMEOUT)
    assert names_in(dest) == set()


def test_a_data_or_model_folder_is_no_corpus_folder(sample_data, tmp_path: Path) -> None:
    with pytest.raises(AdelabelError, match="is a prepared data folder, not a corpus folder"):
        download_corpus(sample_data, base_url="http://127.0.0.1:9/", files={"a": ("0" * 64, 1)})
    with pytest.raises(AdelabelError, match="lies inside .*, a prepared data folder"):
        download_corpus(sample_data / "corpus", base_url="http://127.0.0.1:9/", files={"a": ("0" * 64, 1)})
    assert not (sample_data / "corpus").exists()


def test_keyboard_interrupt_leaves_no_temp_file(fetch, monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupting:
        headers = None

        def __enter__(self) -> "Interrupting":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self, n: int) -> bytes:
            raise KeyboardInterrupt

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **kw: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        fetch()
    assert names_in(fetch.dest) == set()


def test_unsafe_file_name_rejected(fetch) -> None:
    with pytest.raises(AdelabelError, match="plain file name"):
        fetch(files={"../escape.txt": ("0" * 64, 1)})


def test_pinned_corpus_files() -> None:
    assert set(CORPUS_FILES) == {AE_FILE, DOSE_FILE, NEG_FILE}
    assert CORPUS_FILES[AE_FILE] == ("542cdc483ccc94927762eaf2c9a8ecac49a6c10037dda2895be6a6e20160f75a",
                                     1_423_024)
    assert all(len(sha) == 64 and size > 0 for sha, size in CORPUS_FILES.values())
    assert DEFAULT_BASE_URL.startswith("https://") and DEFAULT_BASE_URL.endswith("/")


def test_the_command_downloads_where_prepare_reads(capsys, monkeypatch, tmp_path) -> None:
    """$ADELABEL_CORPUS names the corpus folder prepare and cv read: download writes there too (it wrote
    to corpora/ade-v2 whatever the variable said, and prepare then read an empty folder)."""
    from conftest import run_cli

    where = []
    monkeypatch.setattr(download, "download_corpus", lambda dest, **kw: where.append(Path(dest)) or [])
    monkeypatch.setenv("ADELABEL_CORPUS", str(tmp_path / "ade"))
    assert run_cli(capsys, "download", "-q")[0] == 0
    assert run_cli(capsys, "download", "-q", "--out", tmp_path / "elsewhere")[0] == 0
    monkeypatch.delenv("ADELABEL_CORPUS")
    assert run_cli(capsys, "download", "-q")[0] == 0
    assert where == [tmp_path / "ade", tmp_path / "elsewhere", Path("corpora/ade-v2")]
