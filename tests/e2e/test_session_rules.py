"""Session-aware rules through the official MCP Python SDK, with the shipped bundle: once a tool
of a session has read a file under `fs.sensitive_prefixes`, that session's requests may go only
to `http.trusted_hosts`, whichever tool makes them, and the denial names the earlier read. A
real HTTP server on 127.0.0.1 counts what reaches it; another session is not affected; the
audit log ties each decision to its session."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.request

import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, QuietHandler, audit_rows, client_for, http_gateway, local_http_server, serve_args

pytestmark = pytest.mark.anyio


class _Counter(QuietHandler):
    """Answers every GET with 200 and remembers its path."""

    paths: list[str] = []

    def do_GET(self):  # noqa: N802 (the stdlib's naming)
        type(self).paths.append(self.path)
        self.reply(200, b"ok")


@pytest.fixture
def server():
    _Counter.paths = []
    with local_http_server(_Counter) as server:
        yield server.server_address[1]


@pytest.fixture
def gateway_args(components, cache_dir, tmp_path):
    """The shipped bundle with `/secrets` sensitive and `localhost` the one trusted host."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token.txt").write_text("s3cr3t-value")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "readme.txt").write_text("hello")
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"anonymous": {"tools": ["fetch_*", "files_*"]}, "local": {"tools": ["fetch_*", "files_*"]}},
        "http": {
            "allowed_domains": ["127.0.0.1", "localhost"],
            "allowed_schemes": ["http"],
            "allow_private": True,
            "trusted_hosts": ["localhost"],
        },
        "fs": {"allowed_prefixes": ["/secrets", "/public"], "sensitive_prefixes": ["/secrets"]},
    }))
    db = tmp_path / "audit.db"
    args = serve_args(components, cache_dir, "--policy-data", str(data),
                      "--dir", f"{tmp_path / 'secrets'}::/secrets", "--dir", f"{tmp_path / 'public'}::/public",
                      names=("fetch", "files"), policies=REPO / "policies", audit=db)
    return args, db


async def read_then_fetch(client, port):
    """One session's story: fetch, read a public file, fetch, read the secret, fetch twice."""
    before = await client.call_tool("fetch_fetch", {"url": f"http://127.0.0.1:{port}/before"})
    assert not before.is_error and "ok" in before.structured_content["result"], before
    public = await client.call_tool("files_read-file", {"path": "/public/readme.txt"})
    assert public.structured_content == {"result": {"ok": "hello"}}
    still = await client.call_tool("fetch_fetch", {"url": f"http://127.0.0.1:{port}/after-public"})
    assert "ok" in still.structured_content["result"], still
    secret = await client.call_tool("files_read-file", {"path": "/secrets/token.txt"})
    assert secret.structured_content == {"result": {"ok": "s3cr3t-value"}}
    leak = await client.call_tool("fetch_fetch", {"url": f"http://127.0.0.1:{port}/leak"})
    assert "err" in leak.structured_content["result"], leak
    trusted = await client.call_tool("fetch_fetch", {"url": f"http://localhost:{port}/trusted"})
    assert "ok" in trusted.structured_content["result"], trusted


def sessions_open(gateway) -> float:
    """`gatehouse_sessions_open` from the gateway's `/metrics`."""
    url = gateway.url.removesuffix("/mcp") + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    [line] = [line for line in text.splitlines() if line.startswith("gatehouse_sessions_open ")]
    return float(line.split()[1])


def session_of(row_input: str) -> dict:
    return json.loads(row_input)["session"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_after_a_sensitive_read_the_session_reaches_only_trusted_hosts(transport, gatehouse, gateway_args, server):
    args, db = gateway_args
    async with client_for(transport, gatehouse, args) as client:
        await read_then_fetch(client, server)
    assert _Counter.paths == ["/before", "/after-public", "/trusted"], "the request after the read never left"

    [(reasons, denied_input)] = audit_rows(db, "SELECT reasons, input FROM entries WHERE phase = 'http' AND verdict = 'deny'")
    assert json.loads(reasons) == [
        'no request to "127.0.0.1" from this session: it read /secrets/token.txt (files_read-file), '
        "so only http.trusted_hosts may be contacted"]
    session = session_of(denied_input)
    assert session["labels"] == ["read_sensitive"]
    assert "history" not in session, "entries record the session without its history"
    # Every decision of the story belongs to that one session, in order.
    rows = audit_rows(db, "SELECT phase, verdict, input FROM entries WHERE phase IN ('call', 'http', 'fs', 'result') ORDER BY seq")
    assert {session_of(i)["id"] for (_, _, i) in rows} == {session["id"]}
    labelled = [(phase, verdict) for (phase, verdict, i) in rows if session_of(i)["labels"]]
    assert labelled[0] == ("result", "allow"), "the read's own result decision already sees the label"
    assert ("http", "deny") in labelled
    # `audit query --session` lists that session's decisions, and only those.
    query = subprocess.run([gatehouse, "audit", "query", db, "--session", session["id"], "--format", "json"],
                           capture_output=True, text=True, timeout=60)
    assert query.returncode == 0, query.stderr
    listed = [json.loads(line)["seq"] for line in query.stdout.splitlines()]
    in_session = [seq for (seq, i) in audit_rows(db, "SELECT seq, input FROM entries ORDER BY seq")
                  if json.loads(i).get("session", {}).get("id") == session["id"]]
    assert listed == in_session and len(listed) >= len(rows)
    # The auditor's canned query finds the session, its label and the denial that followed.
    [(sid, _principal, _first, labels, denied_after)] = audit_rows(db, (REPO / "audit" / "queries" / "session_labels.sql").read_text())
    assert (sid, json.loads(labels), denied_after) == (session["id"], ["read_sensitive"], 1)


async def test_session_less_requests_share_their_principals_session(gatehouse, gateway_args, server, tmp_path):
    """The modern SDK client speaks MCP 2026-07-28, which has no transport session: a new
    connection of the same principal still carries what the last one read; another principal's
    does not."""
    args, db = gateway_args
    keys = {"alice": "key-of-alice-0123", "bob": "key-of-bob-456789"}
    config = tmp_path / "gatehouse.toml"
    config.write_text("".join(
        f'[[api_keys]]\nprincipal = "{p}"\nkey_sha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n' for p, k in keys.items()))
    data = tmp_path / "data.json"
    data.write_text(json.dumps({**json.loads(data.read_text()),
                                "principals": {p: {"tools": ["fetch_*", "files_*"]} for p in keys}}))

    async def fetch_as(principal, url, path="/secrets/token.txt"):
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys[principal]}"}, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60) as client:
                if path:
                    read = await client.call_tool("files_read-file", {"path": path})
                    assert read.structured_content == {"result": {"ok": "s3cr3t-value"}}, read
                return await client.call_tool("fetch_fetch", {"url": f"http://127.0.0.1:{server}/{principal}"})

    with http_gateway(gatehouse, [*args, "--config", str(config)]) as gateway:
        assert "err" in (await fetch_as("alice", gateway.url)).structured_content["result"]
        # A new connection of alice's: the read is remembered.
        later = await fetch_as("alice", gateway.url, path=None)
        assert "err" in later.structured_content["result"], later
        # bob never read it.
        bob = await fetch_as("bob", gateway.url, path=None)
        assert "ok" in bob.structured_content["result"], bob
    assert _Counter.paths == ["/bob"]
    denials = audit_rows(db, "SELECT reasons FROM entries WHERE phase = 'http' AND verdict = 'deny'")
    assert len(denials) == 2 and all("it read /secrets/token.txt" in r for (r,) in denials)


async def test_another_session_is_not_affected_and_each_session_has_its_own_id(gatehouse, gateway_args, server):
    args, db = gateway_args
    with http_gateway(gatehouse, args) as gateway:
        async with streamable_http_client(gateway.url) as (read, write):
            async with ClientSession(read, write) as first:
                await first.initialize()
                async with streamable_http_client(gateway.url) as (read2, write2):
                    async with ClientSession(read2, write2) as second:
                        await second.initialize()
                        await read_then_fetch(first, server)
                        # The second session, open all along, never read the secret.
                        other = await second.call_tool("fetch_fetch", {"url": f"http://127.0.0.1:{server}/other"})
                        assert "ok" in other.structured_content["result"], other
                        assert sessions_open(gateway) == 2
        # Both clients ended their sessions (DELETE): the gateway let go of their state.
        deadline = time.monotonic() + 10
        while sessions_open(gateway) != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sessions_open(gateway) == 0
        # A session opened after the first one ended starts clean too.
        async with streamable_http_client(gateway.url) as (read, write):
            async with ClientSession(read, write) as later:
                await later.initialize()
                again = await later.call_tool("fetch_fetch", {"url": f"http://127.0.0.1:{server}/later"})
                assert "ok" in again.structured_content["result"], again
    assert _Counter.paths == ["/before", "/after-public", "/trusted", "/other", "/later"]
    ids = [session_of(i)["id"] for (i,) in audit_rows(db, "SELECT input FROM entries WHERE phase = 'call' ORDER BY seq")]
    assert len(set(ids)) == 3, ids
    assert all(i.startswith("s-") for i in ids)
