"""Redaction that holds: a `result` decision's `redact` masks what the agent receives (the
structured result and its text), and neither the answer nor the audit log holds the secret.
Driven through the official MCP Python SDK over stdio, with the bundled policy."""

from __future__ import annotations

import json
import subprocess

import pytest

from mcp import Client

from conftest import REPO, client_for, http_gateway, serve_args

pytestmark = pytest.mark.anyio
SECRET_EMAIL = "ann.secret-4bd1@example.org"


async def test_result_redaction_masks_what_the_agent_receives(gatehouse, components, cache_dir, tmp_path):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["types_*"]}},
        # Values under keys named `email`, in arguments and results, are secrets here.
        "redact": {"argument_names": ["email", "password", "token"]},
    }))
    audit = tmp_path / "audit" / "audit.db"
    audit.parent.mkdir()
    args = serve_args(components, cache_dir, "--policy-data", str(data), names=("types",),
                      policies=REPO / "policies", audit=audit)
    person = {"name": "Ann", "age": 41, "height-m": 1.7, "active": True, "role": "editor",
              "permissions": ["read"], "tags": [], "email": SECRET_EMAIL}
    async with client_for("stdio", gatehouse, args) as client:
        result = await client.call_tool("types_directory_make-person", person)
        assert not result.is_error, result
        answer = result.structured_content["result"]
        assert answer["email"] == "[redacted]"
        assert answer["name"] == "Ann" and answer["age"] == 41
        text = "".join(block.text for block in result.content if getattr(block, "type", "") == "text")
        assert SECRET_EMAIL not in text and "[redacted]" in text, text

    files = [p for p in audit.parent.iterdir() if p.is_file()]
    assert files
    for path in files:
        assert SECRET_EMAIL.encode() not in path.read_bytes(), f"{path} holds the secret"

    # The result decision records which pointers were masked, and only a keyed digest of the value.
    query = [gatehouse, "audit", "query", str(audit), "--phase", "result", "--format", "json"]
    out = subprocess.run(query, capture_output=True, text=True, check=True).stdout
    entry = json.loads(out)
    assert entry["obligations"]["masked_in_answer"] == ["/result/value/email"], entry
    assert entry["input"]["result"]["value"]["redacted"].startswith("hmac-sha256:"), entry


async def test_a_password_in_a_url_reaches_neither_log_nor_audit(gatehouse, components, cache_dir, tmp_path):
    password = "Hunter2SECRET"
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"anonymous": {"tools": ["fetch_*"]}},
        "http": {"allowed_domains": ["example.com"]},
    }))
    audit = tmp_path / "audit" / "audit.db"
    audit.parent.mkdir()
    args = serve_args(components, cache_dir, "--policy-data", str(data), names=("fetch",),
                      policies=REPO / "policies", audit=audit)
    # Debug logging too: nothing the gateway writes may quote the password.
    with http_gateway(gatehouse, args, env={"RUST_LOG": "debug"}) as gateway:
        async with Client(gateway.url, read_timeout_seconds=60) as client:
            denied = await client.call_tool("fetch_fetch", {"url": f"https://alice:{password}@example.com/"})
            assert denied.is_error
            text = "".join(block.text for block in denied.content if getattr(block, "type", "") == "text")
            assert "argument /arguments/url must be a https URL without credentials" in text, text
            assert password not in text, text
        gateway.stop()
        log = "".join(gateway.stderr_lines)
    assert "call denied by policy" in log, log
    assert password not in log, [line for line in log.splitlines() if password in line]
    for path in audit.parent.iterdir():
        if path.is_file():
            assert password.encode() not in path.read_bytes(), f"{path} holds the password"
    query = [gatehouse, "audit", "query", str(audit), "--phase", "call", "--format", "json"]
    entry = json.loads(subprocess.run(query, capture_output=True, text=True, check=True).stdout)
    assert entry["input"]["arguments"]["url"] == "https://***@example.com/", entry
