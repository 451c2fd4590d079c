"""Tool-definition drift while serving, through the official MCP Python SDK: a component file
replaced under a running gateway by one whose tool says something else is withheld, the event
is in the audit log, and `gatehouse component accept` brings the tool back without a restart."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import anyio
import pytest
from mcp import Client

from conftest import ALLOW_ALL_POLICY, http_gateway

pytestmark = pytest.mark.anyio


async def tool_names(url: str) -> set[str]:
    async with Client(url, read_timeout_seconds=30) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def wait_for(url: str, predicate, what: str) -> set[str]:
    with anyio.fail_after(60):
        while True:
            names = await tool_names(url)
            if predicate(names):
                return names
            await anyio.sleep(0.2)


async def test_a_replaced_component_with_a_changed_tool_is_withheld_until_accepted(gatehouse, components, cache_dir, tmp_path):
    served = tmp_path / "tool.wasm"
    shutil.copy(components["echo"], served)
    audit = tmp_path / "audit.db"
    args = ["serve", "--cache-dir", str(cache_dir), "--audit", str(audit), "--audit-key-dir", str(tmp_path / "keys"), "--policies", str(ALLOW_ALL_POLICY), "--component", f"tool={served}"]
    with http_gateway(gatehouse, args) as gateway:
        assert await tool_names(gateway.url) == {"tool_echo", "tool_fetch"}
        # The `fetch` component also exports a world-level `fetch`, documented differently:
        # same tool name `tool_fetch`, another definition.
        shutil.copy(components["fetch"], tmp_path / "next.wasm")
        (tmp_path / "next.wasm").replace(served)
        names = await wait_for(gateway.url, lambda n: "tool_echo" not in n, "the reload")
        assert "tool_fetch" not in names, "a drifted tool must be withheld"

        accept = subprocess.run([gatehouse, "component", "accept", "tool_fetch", "--pins", str(tmp_path / "gatehouse-pins.json")], capture_output=True, text=True)
        assert accept.returncode == 0, accept.stderr
        await wait_for(gateway.url, lambda n: "tool_fetch" in n, "the acceptance")

    connection = sqlite3.connect(f"file:{audit}?mode=ro", uri=True)
    try:
        verdicts = [row[0] for row in connection.execute("SELECT verdict FROM entries WHERE phase = 'supply' AND tool = 'tool_fetch' ORDER BY seq")]
    finally:
        connection.close()
    assert verdicts == ["pinned", "drift", "accepted"], verdicts
    verify = subprocess.run([gatehouse, "audit", "verify", str(audit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
