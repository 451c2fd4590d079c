"""Brokered secrets through the official MCP Python SDK over streamable HTTP: the gateway holds a
token (from its environment), the shipped bundle's `http.credentials` injects it into the
`fetch` tool's request to a real server on 127.0.0.1 that echoes it back; the tool's answer, the
audit log and the gateway's debug log never hold it."""

from __future__ import annotations

import json

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, QuietHandler, audit_rows, http_gateway, local_http_server, serve_args

pytestmark = pytest.mark.anyio

TOKEN = "ghp_e2eBrokeredToken0123456789"


class _Echo(QuietHandler):
    """Echoes the request's Authorization header in a response header and in the body."""

    seen: list[str | None] = []

    def do_GET(self):  # noqa: N802 (the stdlib's naming)
        auth = self.headers.get("Authorization")
        type(self).seen.append(auth)
        self.reply(200, json.dumps({"authorization": auth}).encode(),
                   {"Content-Type": "application/json", "X-Echo-Authorization": auth or "none"})


@pytest.fixture
def echo():
    _Echo.seen = []
    with local_http_server(_Echo) as server:
        yield server.server_address[1]


async def fetch(url: str, target: str):
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool("fetch_fetch", {"url": target})


async def test_a_brokered_token_reaches_the_server_but_not_the_tool_the_agent_or_the_logs(gatehouse, components, cache_dir, tmp_path, echo):
    config = tmp_path / "gatehouse.toml"
    config.write_text('[secrets.github]\nenv = "E2E_GITHUB_TOKEN"\n')
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"anonymous": {"tools": ["fetch_*"]}},
        "http": {
            "allowed_domains": ["127.0.0.1", "localhost"],
            "allowed_schemes": ["http"],
            "allow_private": True,
            "credentials": [{"host": "127.0.0.1", "scheme": "http", "headers": {"authorization": "Bearer {{secret.github}}"}}],
        },
    }))
    db = tmp_path / "audit.db"
    args = serve_args(components, cache_dir, "--config", str(config), "--policy-data", str(data),
                      names=("fetch",), policies=REPO / "policies", audit=db)
    with http_gateway(gatehouse, args, env={"E2E_GITHUB_TOKEN": TOKEN, "RUST_LOG": "debug"}) as gateway:
        answer = await fetch(gateway.url, f"http://127.0.0.1:{echo}/repos")
        assert _Echo.seen == [f"Bearer {TOKEN}"], "the server got the injected header"
        response = answer.structured_content["result"]["ok"]
        masked = "*" * len(TOKEN)
        assert json.loads(response["body"]) == {"authorization": f"Bearer {masked}"}
        assert ["x-echo-authorization", f"Bearer {masked}"] in response["headers"]
        assert TOKEN not in json.dumps(answer.model_dump())

        # A host the credential does not name gets no token.
        other = await fetch(gateway.url, f"http://localhost:{echo}/repos")
        assert not other.is_error
        assert _Echo.seen[-1] is None
        log = "".join(gateway.stderr_lines)

    assert TOKEN not in log, "the gateway's debug log holds the token"
    assert "a response header echoed a brokered secret" in log
    obligations = [json.loads(o) for (o,) in audit_rows(db, "SELECT obligations FROM entries WHERE phase = 'http' ORDER BY seq")]
    assert obligations[0] == {"inject": {"headers": {"authorization": "Bearer {{secret.github}}"}}}
    assert obligations[1] == {}
    # The auditor's canned query lists which secret went where.
    rows = audit_rows(db, (REPO / "audit" / "queries" / "brokered_secrets.sql").read_text())
    assert [(host, header, template) for (_, _, _, _, host, header, template) in rows] == [
        ("127.0.0.1", "authorization", "Bearer {{secret.github}}")]
    raw_log = b"".join(path.read_bytes() for path in tmp_path.glob("audit.db*") if path.is_file())
    assert raw_log and TOKEN.encode() not in raw_log
