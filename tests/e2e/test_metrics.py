"""Prometheus metrics as a scraper sees them: after a known sequence of calls through the
official MCP Python SDK, `GET /metrics` parses with the `prometheus_client` package's parser
and counts exactly those calls; a tool name a client made up never becomes a label; and a
gateway on stdio is scraped on a listener of its own (`[metrics] listen`)."""

from __future__ import annotations

import pytest
from mcp import Client, MCPError

from conftest import REPO, audit_rows, client_for, free_port, http_gateway, scrape, serve_args, value

pytestmark = pytest.mark.anyio

# Every tool but echo_fetch, denied with the reason "echo_fetch is not for anyone".
DENY_ECHO_FETCH = REPO / "tests" / "policies" / "deny-echo-fetch"

MADE_UP = "made-up-tool-5e1d"


async def test_counts_after_a_known_sequence_of_calls(gatehouse, components, cache_dir, tmp_path):
    audit = tmp_path / "audit" / "audit.db"
    audit.parent.mkdir()
    args = serve_args(components, cache_dir, names=("echo", "misbehave"), policies=DENY_ECHO_FETCH, audit=audit)
    with http_gateway(gatehouse, args) as gateway:
        async with Client(gateway.url, read_timeout_seconds=60) as client:
            listed = (await client.list_tools()).tools
            for message in ["one", "two", "three"]:
                echoed = await client.call_tool("echo_echo", {"message": message})
                assert not echoed.is_error
            denied = await client.call_tool("echo_fetch", {"key": "alpha"})
            assert denied.is_error
            trapped = await client.call_tool("misbehave_trap", {})
            assert trapped.is_error
            with pytest.raises(MCPError, match="unknown tool"):
                await client.call_tool(MADE_UP, {})
        samples, text = scrape(gateway.url.removesuffix("/mcp") + "/metrics")

    calls = "gatehouse_calls_total"
    assert value(samples, calls, tool="echo_echo", verdict="allow", outcome="ok") == 3
    assert value(samples, calls, tool="echo_fetch", verdict="deny", outcome="denied") == 1
    assert value(samples, calls, tool="misbehave_trap", verdict="allow", outcome="trap") == 1
    assert value(samples, calls, tool="(unknown)", verdict="none", outcome="unknown_tool") == 1
    assert sum(v for (name, _), v in samples.items() if name == calls) == 6
    # The made-up name is in no label and nowhere else in the exposition.
    assert MADE_UP not in text
    for (_, labels), _ in samples.items():
        assert all(MADE_UP not in v for _, v in labels)

    decisions = "gatehouse_decisions_total"
    assert value(samples, decisions, phase="call", verdict="allow") == 4
    assert value(samples, decisions, phase="call", verdict="deny") == 1
    assert value(samples, decisions, phase="list", verdict="allow") == len(listed)
    assert value(samples, "gatehouse_denials_total", phase="call", tool="echo_fetch") == 1
    assert value(samples, "gatehouse_traps_total") == 1
    assert value(samples, "gatehouse_calls_in_flight") == 0
    assert value(samples, "gatehouse_components_loaded") == 2
    assert value(samples, "gatehouse_tools_served") == len(listed)
    assert value(samples, "gatehouse_call_duration_seconds_count", tool="echo_echo") == 3
    assert value(samples, "gatehouse_tool_run_seconds_count", tool="echo_echo") == 3
    assert value(samples, "gatehouse_policy_evaluation_seconds_count", phase="call") == 5
    # Every entry in the log went through one audit transaction.
    (entries,) = audit_rows(audit, "SELECT count(*) FROM entries")[0]
    assert value(samples, "gatehouse_audit_batch_entries_sum") == entries
    assert value(samples, "gatehouse_audit_queue_depth") == 0
    (revision,) = [dict(labels)["revision"] for (name, labels) in samples if name == "gatehouse_policy_revision_info"]
    assert revision.startswith("sha256:")


async def test_a_gateway_on_stdio_is_scraped_on_its_own_listener(gatehouse, components, cache_dir, tmp_path):
    port = free_port()
    config = tmp_path / "gatehouse.toml"
    config.write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    args = serve_args(components, cache_dir, "--config", str(config), names=("echo",), policies=DENY_ECHO_FETCH)
    async with client_for("stdio", gatehouse, args) as client:
        echoed = await client.call_tool("echo_echo", {"message": "hi"})
        assert not echoed.is_error
        samples, _ = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "gatehouse_calls_total", tool="echo_echo", verdict="allow", outcome="ok") == 1
