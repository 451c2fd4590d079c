"""Rego decides every call: through the official MCP Python SDK, a caller sees only the tools
it may call, a denied call comes back with the policy's reasons, an allowed call runs, a
broken bundle refuses to serve, a changed bundle is hot-reloaded, an evaluation error denies,
and an API key names the principal."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, client_for, http_gateway, serve_args

pytestmark = pytest.mark.anyio
DEFAULT_POLICIES = REPO / "policies"


def text_of(result) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def write_json(path, value):
    path.write_text(json.dumps(value))
    return path


@pytest.mark.parametrize("evaluator", ["interpreter", "compiled"])
async def test_caller_sees_permitted_tools_and_denials_carry_reasons(gatehouse, components, cache_dir, tmp_path, evaluator):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "note.txt").write_text("hello")
    data = write_json(tmp_path / "data.json", {
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["types_*", "files_read-file"]}},
        "fs": {"allowed_prefixes": ["/in"]},
    })
    args = serve_args(components, cache_dir, "--policy-data", str(data), "--dir", f"{tmp_path / 'in'}::/in",
                      "--policy-evaluator", evaluator, policies=DEFAULT_POLICIES)
    async with client_for("stdio", gatehouse, args) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "types_area" in names and "files_read-file" in names
        assert not [n for n in names if not (n.startswith("types_") or n == "files_read-file")], names
        allowed = await client.call_tool("types_math_add", {"a": 1, "b": 2})
        assert not allowed.is_error and allowed.structured_content == {"result": 3}
        hidden = await client.call_tool("echo_echo", {"message": "hi"})
        assert hidden.is_error and text_of(hidden).startswith("denied by policy:")
        assert "echo_echo" in text_of(hidden)
        outside = await client.call_tool("files_read-file", {"path": "/in/../etc/passwd"})
        assert outside.is_error
        assert 'path "/etc/passwd" is outside fs.allowed_prefixes' in text_of(outside)
        inside = await client.call_tool("files_read-file", {"path": "/in/note.txt"})
        assert inside.structured_content == {"result": {"ok": "hello"}}


def test_a_broken_bundle_refuses_to_serve(gatehouse, components, cache_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_POLICIES, bundle)
    (bundle / "broken.rego").write_text("package gatehouse.call\n\nallow if {\n")
    run = subprocess.run(
        [gatehouse, *serve_args(components, cache_dir, names=("echo",), policies=bundle)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert run.returncode != 0
    assert "broken.rego:" in run.stderr, run.stderr


async def test_hot_reload_changes_a_verdict_without_restart(gatehouse, components, cache_dir, tmp_path):
    data = write_json(tmp_path / "data.json", {"settings": {"mode": "dev"}, "principals": {"anonymous": {"tools": ["echo_*"]}}})
    args = serve_args(components, cache_dir, "--policy-data", str(data), names=("echo",), policies=DEFAULT_POLICIES)
    with http_gateway(gatehouse, args) as gateway:
        async with Client(gateway.url, read_timeout_seconds=60) as client:
            first = await client.call_tool("echo_echo", {"message": "before"})
            assert not first.is_error, text_of(first)
            write_json(data, {"settings": {"mode": "dev"}, "principals": {}})
            deadline = time.monotonic() + 20
            while True:
                later = await client.call_tool("echo_echo", {"message": "after"})
                if later.is_error:
                    break
                assert time.monotonic() < deadline, "the changed data was not reloaded"
                time.sleep(0.2)
            assert text_of(later).startswith("denied by policy:")


async def test_an_evaluation_error_denies(gatehouse, components, cache_dir, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "call.rego").write_text('package gatehouse.call\n\nallow if to_number("not a number") > 0\n')
    args = serve_args(components, cache_dir, names=("echo",), policies=bundle)
    async with client_for("stdio", gatehouse, args) as client:
        result = await client.call_tool("echo_echo", {"message": "x"})
        assert result.is_error
        assert "policy error" in text_of(result), text_of(result)


async def test_an_api_key_names_the_principal(gatehouse, components, cache_dir, tmp_path):
    key = "s3cret-key-for-alice"
    config = tmp_path / "gatehouse.toml"
    config.write_text(f'[[api_keys]]\nprincipal = "alice"\nkey_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\n')
    data = write_json(tmp_path / "data.json", {"settings": {"mode": "dev"}, "principals": {"alice": {"tools": ["echo_*"]}}})
    args = serve_args(components, cache_dir, "--config", str(config), "--policy-data", str(data), names=("echo", "types"), policies=DEFAULT_POLICIES)
    with http_gateway(gatehouse, args) as gateway:
        async with Client(gateway.url, read_timeout_seconds=60) as anonymous:
            assert (await anonymous.list_tools()).tools == []
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with Client(streamable_http_client(gateway.url, http_client=http), read_timeout_seconds=60) as alice:
                names = sorted(tool.name for tool in (await alice.list_tools()).tools)
                assert names == ["echo_echo", "echo_fetch"]
                echoed = await alice.call_tool("echo_echo", {"message": "hi"})
                assert echoed.structured_content == {"result": "hi"}
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong"}, timeout=60) as http:
            with pytest.raises(Exception):
                async with Client(streamable_http_client(gateway.url, http_client=http), read_timeout_seconds=10) as intruder:
                    await intruder.list_tools()
