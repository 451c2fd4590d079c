"""Callers identified by JWT bearer tokens: the official MCP Python SDK connects over streamable
HTTP with a token this test mints (PyJWT, an EC P-256 key it generates, published in a JWKS
file), and the shipped policy bundle grants a tool by the token's `groups` claim."""

from __future__ import annotations

import json
import time

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, audit_rows, http_gateway, serve_args

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.test"
AUDIENCE = "gatehouse-e2e"


def mint(key, sub: str, groups: list[str], **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, "groups": groups, **overrides}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "e2e-key"})


async def tools_and_echo(url: str, token: str):
    """The tools `token`'s caller is shown, and the result of its call to `echo_echo`."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [tool.name for tool in (await session.list_tools()).tools]
                return tools, await session.call_tool("echo_echo", {"message": "hello"})


async def test_the_sdk_connects_with_a_bearer_jwt_and_the_policy_sees_its_claims(gatehouse, components, cache_dir, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "e2e-key", "use": "sig"}]}))
    config = tmp_path / "gatehouse.toml"
    config.write_text(
        "[server]\nallow_anonymous = false\n"
        f'[auth.jwt]\njwks_file = "jwks.json"\nissuer = "{ISSUER}"\naudience = "{AUDIENCE}"\n'
    )
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "claim_grants": {"groups": {"analysts": {"tools": ["echo_*"]}}},
    }))
    db = tmp_path / "audit.db"
    args = serve_args(components, cache_dir, "--config", str(config), "--policy-data", str(data),
                      names=("echo",), policies=REPO / "policies", audit=db)
    with http_gateway(gatehouse, args) as gateway:
        analyst = mint(key, "ada", ["analysts"])
        tools, echoed = await tools_and_echo(gateway.url, analyst)
        assert "echo_echo" in tools
        assert echoed.structured_content == {"result": "hello"}

        # The same issuer's token without the group: nothing shown, the call denied.
        tools, denied = await tools_and_echo(gateway.url, mint(key, "bob", ["staff"]))
        assert tools == []
        assert denied.is_error

        # No token, or an expired one: refused before MCP, with the reason in the challenge.
        async with httpx2.AsyncClient(timeout=30) as raw:
            hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
            headers = {"Accept": "application/json, text/event-stream"}
            assert (await raw.post(gateway.url, json=hello, headers=headers)).status_code == 401
            expired = mint(key, "ada", ["analysts"], exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
            refused = await raw.post(gateway.url, json=hello, headers={**headers, "Authorization": f"Bearer {expired}"})
            assert refused.status_code == 401
            assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
            assert "expired" in refused.headers["WWW-Authenticate"]

    callers = {json.loads(c)["principal"]: json.loads(c) for (c,) in audit_rows(db, "SELECT caller FROM entries WHERE phase = 'call'")}
    assert callers["ada"]["auth"] == "jwt"
    assert callers["ada"]["claims"]["groups"] == ["analysts"]
    assert callers["bob"]["claims"]["groups"] == ["staff"]
    assert [r for (r,) in audit_rows(db, "SELECT verdict FROM entries WHERE phase = 'auth'")] == ["deny", "deny"]
    raw_log = b"".join(path.read_bytes() for path in tmp_path.glob("audit.db*") if path.is_file())
    for token in (analyst, expired):
        assert token.split(".")[2].encode() not in raw_log
