"""A misbehaving tool gets a clear error naming what stopped it, and the gateway keeps serving
other calls at full speed: an endless loop, a memory bomb, deep recursion, a huge result."""

from __future__ import annotations

import time

import anyio
import pytest

from conftest import client_for, serve_args

pytestmark = pytest.mark.anyio


def text_of(result) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def test_limits_stop_misbehaving_tools_and_the_gateway_keeps_serving(gatehouse, components, cache_dir, tmp_path):
    config = tmp_path / "gatehouse.toml"
    config.write_text("[limits]\ntimeout_ms = 1500\nmemory_bytes = 67108864\nmax_result_bytes = 1048576\n")
    args = serve_args(components, cache_dir, "--config", str(config), names=("misbehave",))
    async with client_for("http", gatehouse, args) as client:
        quick_latencies = []

        async def quick_calls():
            await anyio.sleep(0.2)  # while the spinning call runs
            for _ in range(5):
                started = time.monotonic()
                ok = await client.call_tool("misbehave_ok", {})
                quick_latencies.append(time.monotonic() - started)
                assert not ok.is_error

        spin_result = {}

        async def spin():
            spin_result["value"] = await client.call_tool("misbehave_spin", {})

        async with anyio.create_task_group() as group:
            group.start_soon(spin)
            group.start_soon(quick_calls)
        spun = spin_result["value"]
        assert spun.is_error and "time limit of 1500 ms" in text_of(spun), text_of(spun)
        # The loop did not hold the others up: each quick call finished well inside the limit.
        assert max(quick_latencies) < 1.0, quick_latencies

        bomb = await client.call_tool("misbehave_allocate", {"megabytes": 1024})
        assert bomb.is_error and "memory limit of 67108864 bytes" in text_of(bomb), text_of(bomb)
        deep = await client.call_tool("misbehave_recurse", {"depth": 100_000_000})
        assert deep.is_error and "stack" in text_of(deep) and text_of(deep).startswith("the tool "), text_of(deep)
        huge = await client.call_tool("misbehave_huge-result", {"megabytes": 8})
        assert huge.is_error and "over the limit of 1048576 bytes" in text_of(huge), text_of(huge)
        still = await client.call_tool("misbehave_ok", {})
        assert not still.is_error
