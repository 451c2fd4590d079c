"""A tool's `wasi:logging` lines reach the MCP client that called it, as
`notifications/message` at or above the level it set with `logging/setLevel`, through the
official MCP Python SDK over stdio and streamable HTTP; and they are in the call's audit story."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from conftest import audit_rows, client_for, serve_args

pytestmark = pytest.mark.anyio


async def wait_for(predicate, seconds=10.0):
    """Notifications travel beside the answer (on HTTP, on the session's own stream)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


HTTP_GAP = pytest.mark.xfail(
    strict=True,
    reason="over streamable HTTP rmcp sends notifications/message on the session's standalone "
    "stream, not the call's, and the SDK client does not receive them there yet",
)


@pytest.mark.parametrize("transport", ["stdio", pytest.param("http", marks=HTTP_GAP)])
async def test_log_lines_at_or_above_the_set_level_are_notified(transport, gatehouse, components, cache_dir, tmp_path):
    audit = tmp_path / "audit.db"
    args = serve_args(components, cache_dir, names=("contract",), audit=audit)
    heard = []

    async def on_log(params):
        heard.append(params)

    async with client_for(transport, gatehouse, args, logging_callback=on_log) as client:
        # Before a level is set, nothing is sent.
        result = await client.call_tool("contract_log-lines", {"count": 2, "level": "error", "message": "early"})
        assert not result.is_error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK marks MCP logging deprecated (SEP-2577)
            await client.set_logging_level("warning")
        await client.call_tool("contract_log-lines", {"count": 2, "level": "info", "message": "quiet"})
        await client.call_tool("contract_log-lines", {"count": 2, "level": "warn", "message": "loud"})
        assert await wait_for(lambda: len(heard) >= 2), heard
        await asyncio.sleep(0.2)

    assert [(p.level, p.logger, p.data) for p in heard] == [
        ("warning", "contract_log-lines", {"context": "contract", "message": "loud 0"}),
        ("warning", "contract_log-lines", {"context": "contract", "message": "loud 1"}),
    ]
    # Every line is in the audit log, sent or not.
    rows = audit_rows(audit, "SELECT verdict, json_extract(input, '$.log.message') FROM entries WHERE phase = 'log' ORDER BY seq")
    assert rows == [
        ("error", "early 0"), ("error", "early 1"),
        ("info", "quiet 0"), ("info", "quiet 1"),
        ("warn", "loud 0"), ("warn", "loud 1"),
    ]
