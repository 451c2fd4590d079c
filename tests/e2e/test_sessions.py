"""An MCP session over streamable HTTP serves only the principal that opened it: with the
official MCP Python SDK, alice (one API key) opens a session; bob (another key) and an anonymous
caller who name alice's `Mcp-Session-Id` are answered 404, as for an unknown session, whether
they POST into it, open its GET stream or DELETE it; alice's session keeps working."""

from __future__ import annotations

import hashlib
import json

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import http_gateway, serve_args

pytestmark = pytest.mark.anyio

KEYS = {"alice": "key-of-alice", "bob": "key-of-bob"}
ACCEPT_BOTH = "application/json, text/event-stream"


def api_keys_config(path):
    path.write_text("".join(
        f'[[api_keys]]\nprincipal = "{principal}"\nkey_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n'
        for principal, key in KEYS.items()
    ))
    return path


def rpc(method: str, id_: int = 7, **params) -> bytes:
    message = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params:
        message["params"] = params
    return json.dumps(message).encode()


async def statuses(http: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, int]:
    """The HTTP status of a POST (a tool call), a GET (the session's stream) and a DELETE, each
    naming the session in `headers`. The GET's body, an endless stream when served, is not read."""
    post = await http.post(url, content=rpc("tools/call", name="echo_echo", arguments={"message": "hijacked"}),
                           headers={**headers, "Content-Type": "application/json", "Accept": ACCEPT_BOTH})
    async with http.stream("GET", url, headers={**headers, "Accept": "text/event-stream"}) as get:
        get_status = get.status_code
    delete = await http.delete(url, headers=headers)
    return {"POST": post.status_code, "GET": get_status, "DELETE": delete.status_code}


async def test_a_session_serves_only_the_principal_that_opened_it(gatehouse, components, cache_dir, tmp_path):
    config = api_keys_config(tmp_path / "gatehouse.toml")
    args = serve_args(components, cache_dir, "--config", str(config), names=("echo",))
    with http_gateway(gatehouse, args) as gateway:
        alice_auth = {"Authorization": f"Bearer {KEYS['alice']}"}
        opened: list[str] = []

        async def note_session(response: httpx2.Response) -> None:
            if session_id := response.headers.get("Mcp-Session-Id"):
                opened.append(session_id)

        async with httpx2.AsyncClient(headers=alice_auth, timeout=60, event_hooks={"response": [note_session]}) as alice_http:
            async with streamable_http_client(gateway.url, http_client=alice_http) as (read, write):
                async with ClientSession(read, write) as session:
                    initialized = await session.initialize()
                    assert opened, "the gateway opened a session"
                    session_id = opened[0]
                    naming_it = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": str(initialized.protocol_version)}

                    async with httpx2.AsyncClient(timeout=30) as raw:
                        intruders = {
                            "bob": {"Authorization": f"Bearer {KEYS['bob']}"},
                            "anonymous": {},
                        }
                        for intruder, auth in intruders.items():
                            answers = await statuses(raw, gateway.url, {**naming_it, **auth})
                            assert answers == {"POST": 404, "GET": 404, "DELETE": 404}, intruder

                        # The session is still alice's, and still works, through the SDK…
                        echoed = await session.call_tool("echo_echo", {"message": "still mine"})
                        assert echoed.structured_content == {"result": "still mine"}
                        # …and for a raw request with alice's key.
                        ping = await raw.post(gateway.url, content=rpc("ping"), headers={
                            **naming_it, **alice_auth, "Content-Type": "application/json", "Accept": ACCEPT_BOTH})
                        assert ping.status_code == 200, ping.text

        refusals = [line for line in gateway.stderr_lines if "is not a session of this principal" in line]
        assert len(refusals) == 6, "".join(gateway.stderr_lines[-20:])
        assert any("principal=bob" in line and "owner=alice" in line for line in refusals), refusals
        assert any("principal=anonymous" in line and "owner=alice" in line for line in refusals), refusals
