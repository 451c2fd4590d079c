"""The gateway as an agent sees it, through the official MCP Python SDK over stdio and over
streamable HTTP: tool listing, calls of every kind of WIT type, outgoing HTTP to a local server,
files under a mount, bad arguments, traps — and the server keeps serving after each."""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from email.message import Message

import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, client_for, http_gateway, serve_args

TRANSPORTS = ["stdio", "http"]
pytestmark = pytest.mark.anyio


def text_of(result) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tools_are_listed_with_wit_docs_and_schemas(transport, gatehouse, components, cache_dir):
    async with client_for(transport, gatehouse, serve_args(components, cache_dir)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        # World-level and interface functions of several components; the same WIT name
        # `fetch` from two components is two distinct tools.
        for name in ["types_area", "types_math_add", "types_directory_make-person", "fetch_fetch", "echo_fetch", "files_read-file", "misbehave_trap"]:
            assert name in tools, f"{name} missing from {sorted(tools)}"
        area = tools["types_area"]
        assert area.description.startswith("The area of a shape.")
        assert area.input_schema["required"] == ["s"]
        assert area.input_schema["additionalProperties"] is False
        assert area.output_schema["required"] == ["result"]
        # Functions that need resource handles are not offered; their siblings are.
        assert "types_counters_max-value" in tools
        assert not [name for name in tools if "counter." in name or name.endswith("read-counter")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_calls_cover_every_wit_type(transport, gatehouse, components, cache_dir):
    async with client_for(transport, gatehouse, serve_args(components, cache_dir)) as client:

        async def call(name, arguments):
            result = await client.call_tool(name, arguments)
            return result, (result.structured_content or {}).get("result")

        circle = {"circle": {"center": {"x": 0, "y": 0}, "radius": 1.0}}
        result, value = await call("types_area", {"s": circle})
        assert not result.is_error and value == pytest.approx(math.pi)
        assert float(text_of(result)) == pytest.approx(math.pi)

        _, value = await call("types_scale", {"s": {"point": None}, "factor": 2.0})
        assert value == {"point": None}
        _, value = await call("types_max-u64", {})
        assert value == "18446744073709551615"
        _, value = await call("types_min-s64", {})
        assert value == "-9223372036854775808"
        _, value = await call("types_echo-u64", {"value": "18446744073709551615"})
        assert value == "18446744073709551615"
        _, value = await call("types_echo-u64", {"value": 42})
        assert value == 42
        _, value = await call("types_special-f64", {"which": "nan"})
        assert value == "NaN"
        _, value = await call("types_special-f64", {"which": "negative-infinity"})
        assert value == "-Infinity"
        _, value = await call("types_next-char", {"c": "😀"})
        assert value == "😁"
        _, value = await call("types_echo-small-integers", {"a": -128, "b": -32768, "c": -2147483648, "d": 255, "e": 65535, "f": 4294967295})
        assert value == [-128, -32768, -2147483648, 255, 65535, 4294967295]
        _, value = await call("types_directory_permissions-for", {"role": "editor"})
        assert value == ["read", "write"]
        _, value = await call("types_directory_nested-option", {"depth": 0})
        assert value is None
        _, value = await call("types_directory_nested-option", {"depth": 1})
        assert value == {"some": None}
        _, value = await call("types_directory_nested-option", {"depth": 2})
        assert value == {"some": "deep"}
        _, value = await call("types_directory_empty-list", {})
        assert value == []
        _, value = await call("types_directory_swap", {"pair": ["x", 7]})
        assert value == [7, "x"]
        result, value = await call("types_directory_parse-port", {"text": "8080"})
        assert not result.is_error and value == {"ok": 8080}
        # A function's own `err` is a tool error the agent can read.
        result, value = await call("types_directory_parse-port", {"text": "port"})
        assert result.is_error and value == {"err": "not-a-number"}
        assert "not-a-number" in text_of(result)
        person = {
            "name": "Ada", "age": 36, "height-m": 1.65, "active": True, "role": "admin",
            "permissions": ["read", "share"], "tags": ["math"], "email": None,
            "address": {"street": "1 Loop", "city": "London", "postcode": None},
        }
        _, value = await call("types_directory_echo-person", {"p": person})
        assert value == {**person, "height-m": pytest.approx(1.65)}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_arguments_get_clear_errors_and_the_server_keeps_serving(transport, gatehouse, components, cache_dir):
    async with client_for(transport, gatehouse, serve_args(components, cache_dir)) as client:
        bad = await client.call_tool("types_area", {"s": {"circle": {"center": {"x": 0, "y": 0}, "radius": "x"}}})
        assert bad.is_error
        assert text_of(bad) == 'invalid arguments: s.circle.radius: expected f64 (a number, or "NaN", "Infinity", "-Infinity"), got string "x"'
        missing = await client.call_tool("types_math_add", {"a": 1})
        assert missing.is_error and 'missing' in text_of(missing) and '"b"' in text_of(missing)
        extra = await client.call_tool("types_math_add", {"a": 1, "b": 2, "c": 3})
        assert extra.is_error and 'unexpected argument "c"' in text_of(extra)
        overflow = await client.call_tool("types_echo-small-integers", {"a": 128, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0})
        assert overflow.is_error and text_of(overflow).startswith("invalid arguments: a: expected s8")
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("no_such_tool", {})
        trapped = await client.call_tool("misbehave_trap", {})
        assert trapped.is_error and "trapped" in text_of(trapped)
        ok = await client.call_tool("types_math_add", {"a": 2, "b": 3})
        assert not ok.is_error and ok.structured_content == {"result": 5}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fetch_reaches_only_allowed_hosts(transport, gatehouse, components, cache_dir, web, tmp_path):
    # The bundled policy, with its default deny of loopback addresses lifted by this test's
    # data so that the allowed path is tested for real against the local server.
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["*"]}, "anonymous": {"tools": ["*"]}},
        "http": {"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allow_private": True},
    }))
    args = serve_args(components, cache_dir, "--policy-data", str(data), policies=REPO / "policies")
    async with client_for(transport, gatehouse, args) as client:
        result = await client.call_tool("fetch_fetch", {"url": f"{web}/hello"})
        assert not result.is_error, text_of(result)
        response = result.structured_content["result"]["ok"]
        assert response["status"] == 200
        assert response["body"] == "hello from the test server"
        assert ["x-test", "yes"] in [[k.lower(), v] for k, v in response["headers"]]
        # A host the policy does not list is denied, with the policy's reason.
        denied = await client.call_tool("fetch_fetch", {"url": f"http://localhost:{web.rsplit(':', 1)[1]}/hello"})
        assert denied.is_error and 'domain "localhost" is not in http.allowed_domains' in text_of(denied)
        # The other component's `fetch` is a different tool.
        echoed = await client.call_tool("echo_fetch", {"key": "no-such-key"})
        assert not echoed.is_error and echoed.structured_content == {"result": None}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_files_read_write_and_list_under_a_mount(transport, gatehouse, components, cache_dir, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "note.txt").write_text("from the host")
    (tmp_path / "out").mkdir()
    args = serve_args(components, cache_dir, "--dir", f"{tmp_path / 'in'}::/in", "--dir", f"{tmp_path / 'out'}::/out::rw")
    async with client_for(transport, gatehouse, args) as client:
        read = await client.call_tool("files_read-file", {"path": "/in/note.txt"})
        assert read.structured_content == {"result": {"ok": "from the host"}}
        wrote = await client.call_tool("files_write-file", {"path": "/out/new.txt", "contents": "from the tool"})
        assert not wrote.is_error, text_of(wrote)
        assert (tmp_path / "out" / "new.txt").read_text() == "from the tool"
        listed = await client.call_tool("files_list-dir", {"path": "/out"})
        assert listed.structured_content == {"result": {"ok": ["new.txt"]}}
        # The read-only mount refuses writes.
        refused = await client.call_tool("files_write-file", {"path": "/in/evil.txt", "contents": "x"})
        assert refused.is_error
        assert not (tmp_path / "in" / "evil.txt").exists()


# A raw client's JSON-RPC headers and `initialize` request, for tests below the SDK.
RAW_PROTOCOL_VERSION = "2025-06-18"
RAW_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
RAW_INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": RAW_PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}).encode()


def _request(url: str, body: bytes | None, headers: dict[str, str], method: str = "POST") -> tuple[int, bytes, Message]:
    """Status, body and headers of one raw HTTP request (error statuses included)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def test_http_listener_refuses_foreign_hosts_and_malformed_json(gatehouse, components, cache_dir):
    with http_gateway(gatehouse, serve_args(components, cache_dir, names=("echo",))) as gateway:
        # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
        status, _, _ = _request(gateway.url, RAW_INITIALIZE, {**RAW_HEADERS, "Host": "evil.example"})
        assert status == 403
        status, _, _ = _request(gateway.url, RAW_INITIALIZE, {**RAW_HEADERS, "Origin": "http://evil.example"})
        assert status == 403
        # Malformed JSON-RPC gets an error answer, not a dropped connection.
        status, body, _ = _request(gateway.url, b"{not json", RAW_HEADERS)
        assert 400 <= status < 500, body
        assert b"error" in body.lower() or b"parse" in body.lower(), body
        # And the listener still works.
        status, body, _ = _request(gateway.url, RAW_INITIALIZE, RAW_HEADERS)
        assert status == 200, body


async def test_a_session_ends_cleanly(gatehouse, components, cache_dir, caplog):
    """The DELETE that ends a session is answered 204 and the session is gone: the SDK client
    closes without logging a failure (it takes only 200 and 204 as success)."""
    caplog.set_level(logging.WARNING, logger="mcp")
    with http_gateway(gatehouse, serve_args(components, cache_dir, names=("echo",))) as gateway:
        # The SDK's transport API: it sends the DELETE when its context closes.
        async with streamable_http_client(gateway.url) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                assert (await session.list_tools()).tools
        failures = [r.getMessage() for r in caplog.records if "termination" in r.getMessage().lower()]
        assert not failures, failures

        status, body, answer_headers = _request(gateway.url, RAW_INITIALIZE, RAW_HEADERS)
        assert status == 200, body
        session = {"Mcp-Session-Id": answer_headers["Mcp-Session-Id"], "MCP-Protocol-Version": RAW_PROTOCOL_VERSION}
        status, body, _ = _request(gateway.url, None, session, method="DELETE")
        assert status == 204, body
        ping = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"}).encode()
        status, body, _ = _request(gateway.url, ping, {**RAW_HEADERS, **session})
        assert status == 404, body
