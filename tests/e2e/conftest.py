"""Shared fixtures for the end-to-end tests: the gateway binary, the test components, a local
HTTP server for tools to fetch from, and gateways started over stdio or streamable HTTP.

Every server here listens on 127.0.0.1 only and is stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import tempfile
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from mcp import Client, StdioServerParameters
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
COMPONENT_NAMES = ("types", "fetch", "files", "echo", "misbehave", "escape", "contract")
# Written in Python (componentize-py) and JavaScript (componentize-js); tests/components/README.md.
POLYGLOT_NAMES = ("py-files", "js-fetch")


@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory) -> Path:
    """`XDG_STATE_HOME` for every gatehouse process of the session: a gateway started without
    `--audit-key-dir` creates its audit keys here, never in the user's home."""
    path = tmp_path_factory.mktemp("state-home")
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(path)
    yield path
    if previous is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = previous


@pytest.fixture(scope="session")
def gatehouse() -> Path:
    path = Path(os.environ.get("GATEHOUSE_BIN", REPO / "target" / "debug" / "gatehouse"))
    assert path.is_file(), f"{path} is missing: build it with `cargo build` (scripts/test does)"
    return path


@pytest.fixture(scope="session")
def components() -> dict[str, Path]:
    """Builds the test components from source (a no-op when they are up to date)."""
    subprocess.run([REPO / "scripts" / "build-components"], check=True, capture_output=True)
    out = REPO / "target" / "components" / "wasm32-wasip2" / "release"
    paths = {name: out / f"{name}.wasm" for name in COMPONENT_NAMES}
    polyglot = REPO / "target" / "components" / "polyglot"
    paths |= {name: polyglot / f"{name}.wasm" for name in POLYGLOT_NAMES}
    for name, path in paths.items():
        assert path.is_file(), f"component {name} was not built at {path}"
    return paths


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One compiled-component cache for the session, so each component compiles once."""
    return tmp_path_factory.mktemp("compile-cache")


def precompile(gatehouse: Path, wasm: Path, cache: Path):
    """Compiles `wasm` into the compile cache `cache` with `gatehouse tools`, which has no
    deadline: a Python or JavaScript component takes wasmtime tens of seconds in a debug
    build, longer than an MCP client waits for a gateway that compiles at start."""
    done = subprocess.run([gatehouse, "tools", wasm, "--cache-dir", cache], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def polyglot_cache(gatehouse, components) -> Path:
    """A compile cache kept between runs (target/components/compile-cache) with the Python and
    JavaScript components compiled in: an entry is reused while the component and the engine
    configuration are unchanged (the gateway checks both), so only the first run pays."""
    cache = REPO / "target" / "components" / "compile-cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    for name in POLYGLOT_NAMES:
        precompile(gatehouse, components[name], cache)
    return cache


class QuietHandler(BaseHTTPRequestHandler):
    """A test server's request handler: answers with `reply`, logs nothing."""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


class _Handler(QuietHandler):
    """A tiny web server for tools to reach: /hello answers, /redirect?to=URL redirects there
    (302), anything else is 404. The server records the path of every request it gets."""

    def do_GET(self):  # noqa: N802 (the stdlib's naming)
        self.server.paths.append(self.path)
        if self.path.startswith("/redirect?to="):
            self.reply(302, headers={"Location": unquote(self.path.removeprefix("/redirect?to="))})
        elif self.path == "/hello":
            self.reply(200, b"hello from the test server", {"Content-Type": "text/plain", "X-Test": "yes"})
        else:
            self.reply(404)


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]):
    """A real HTTP server on 127.0.0.1 with an ephemeral port, answering with `handler`;
    yields the server (its `server_address[1]` is the port; `paths` lists what `_Handler` was
    asked for) and stops it on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class WebServer:
    """The test's web server: its base URL and the paths it was asked for, in order."""

    def __init__(self, url: str, paths: list[str]):
        self.url = url
        self.paths = paths


@pytest.fixture
def web_server():
    """The tiny web server (`_Handler`) on 127.0.0.1."""
    with local_http_server(_Handler) as server:
        yield WebServer(f"http://127.0.0.1:{server.server_address[1]}", server.paths)


@pytest.fixture
def web(web_server):
    """The base URL of a real HTTP server on 127.0.0.1 (`web_server`)."""
    return web_server.url


ALLOW_ALL_POLICY = REPO / "tests" / "policies" / "allow-all"


def serve_args(components: dict[str, Path], cache_dir: Path, *extra: str, names=("types", "fetch", "files", "echo", "misbehave"), policies: Path | None = ALLOW_ALL_POLICY, audit: Path | None = None) -> list[str]:
    """`gatehouse serve` arguments for the named components. The tests of tools and transports
    use the allow-all test bundle; policy tests pass their own (`policies=None` adds none).
    Each gateway gets a fresh audit log in a directory of its own beside the compile cache, in
    this session's pytest temporary directory, which pytest prunes (it keeps the last three). Its
    audit keys go to `keys/` beside the log, never to the user's home."""
    audit = audit or Path(tempfile.mkdtemp(prefix="audit-", dir=cache_dir.parent)) / "audit.db"
    args = ["serve", "--cache-dir", str(cache_dir), "--audit", str(audit), "--audit-key-dir", str(audit.parent / "keys")]
    if policies is not None:
        args += ["--policies", str(policies)]
    for name in names:
        args += ["--component", str(components[name])]
    return args + list(extra)


class HttpGateway:
    """`gatehouse serve --http 127.0.0.1:0`, with the port read from its banner on stderr."""

    BANNER = re.compile(r"MCP over streamable HTTP at (http://127\.0\.0\.1:\d+/mcp)")

    def __init__(self, binary: Path, args: list[str], env: dict[str, str] | None = None):
        self.process = subprocess.Popen(
            [binary, *args, "--http", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stderr_lines: list[str] = []
        self.url = self._wait_for_banner()
        # Keep draining stderr so the gateway never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_banner(self, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError(f"gateway exited before listening:\n{''.join(self.stderr_lines)}")
            self.stderr_lines.append(line)
            if match := self.BANNER.search(line):
                return match.group(1)
        raise AssertionError("gateway did not print its banner in time")

    def _drain(self):
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def http_gateway(binary: Path, args: list[str], env: dict[str, str] | None = None):
    gateway = HttpGateway(binary, args, env)
    try:
        yield gateway
    finally:
        gateway.stop()


def client_for(transport: str, binary: Path, args: list[str], **options):
    """An MCP client (the official Python SDK) connected over `transport`, as an async
    context manager yielding the client; `options` go to `Client` (e.g. `logging_callback`)."""

    @contextlib.asynccontextmanager
    async def connect():
        if transport == "stdio":
            params = StdioServerParameters(command=str(binary), args=args, env={"RUST_LOG": "warn", "PATH": os.environ["PATH"]})
            async with Client(params, read_timeout_seconds=60, **options) as client:
                yield client
        else:
            with http_gateway(binary, args) as gateway:
                async with Client(gateway.url, read_timeout_seconds=60, **options) as client:
                    yield client

    return connect()


def audit_rows(db, sql):
    """Rows of `sql` on the audit log `db`, opened read-only as an auditor would."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def scrape(url: str):
    """The metrics at `url`, parsed as Prometheus would: {(sample name, frozen labels): value},
    and the raw text."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, text


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
