"""Load a running gateway with the official MCP Python SDK: N concurrent clients, each with its
own streamable-HTTP session, share a fixed number of tools/call requests. Prints calls/s and
latency percentiles measured at the client, like `gatehouse bench` does, so the two can be
compared: the difference is what a real SDK client costs on the same machine.

    .venv/bin/python benches/mcp_sdk_load.py --url http://127.0.0.1:8787/mcp --clients 8 --calls 2000
"""

from __future__ import annotations

import argparse
import json
import time

import anyio
from mcp import Client


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8787/mcp")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tool", default="echo_echo")
    parser.add_argument("--arguments", default='{"message": "hello"}')
    args = parser.parse_args()
    arguments = json.loads(args.arguments)

    remaining = args.calls
    latencies: list[float] = []
    failures: list[str] = []
    ready = anyio.Event()
    connected = 0

    async def client_task() -> None:
        nonlocal remaining, connected
        async with Client(args.url, read_timeout_seconds=60) as client:
            for _ in range(args.warmup):
                await client.call_tool(args.tool, arguments)
            connected += 1
            if connected == args.clients:
                ready.set()
            await ready.wait()
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                result = await client.call_tool(args.tool, arguments)
                latencies.append(time.perf_counter() - start)
                if result.is_error:
                    failures.append(str(result.content))

    started = 0.0

    async def clock() -> None:
        nonlocal started
        await ready.wait()
        started = time.perf_counter()

    async with anyio.create_task_group() as group:
        group.start_soon(clock)
        for _ in range(args.clients):
            group.start_soon(client_task)
    elapsed = time.perf_counter() - started
    latencies.sort()

    def at(p: float) -> float:
        return latencies[round((len(latencies) - 1) * p)] * 1e3

    print(
        f"{len(latencies)} calls by {args.clients} MCP SDK clients in {elapsed:.2f} s: "
        f"{len(latencies) / elapsed:.0f} calls/s; latency p50 {at(0.5):.3f} ms, "
        f"p95 {at(0.95):.3f} ms, p99 {at(0.99):.3f} ms; {len(failures)} failed"
    )
    if failures:
        raise SystemExit(f"first failure: {failures[0]}")


if __name__ == "__main__":
    anyio.run(main)
