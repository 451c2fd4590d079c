"""Load a running gateway with the official MCP Python SDK: N concurrent clients, each with its
own streamable-HTTP session, share a fixed number of tools/call requests. Prints calls/s and
latency percentiles measured at the client, like `gatehouse bench` does, so the two can be
compared: the difference is what a real SDK client costs on the same machine.

With --server-pid (a server process on this host), it also prints the server's CPU time per
measured call: user + system time from /proc/PID/stat over the measured calls, warm-up
excluded, as `gatehouse bench --server-pid` does. --json prints one JSON object instead.

    .venv/bin/python benches/mcp_sdk_load.py --url http://127.0.0.1:8787/mcp --clients 8 --calls 2000
"""

from __future__ import annotations

import argparse
import json
import os
import time

import anyio
from mcp import Client


def server_cpu_seconds(pid: int) -> float:
    """User + system time of process `pid` (fields 14 and 15 of /proc/PID/stat, counted after
    the command name, which is in parentheses and may hold spaces)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8787/mcp")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--tool", default="echo_echo")
    parser.add_argument("--arguments", default='{"message": "hello"}')
    parser.add_argument("--server-pid", type=int, help="report this server process's CPU per call")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
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
    cpu_before = 0.0

    async def clock() -> None:
        nonlocal started, cpu_before
        await ready.wait()
        if args.server_pid:
            cpu_before = server_cpu_seconds(args.server_pid)
        started = time.perf_counter()

    async with anyio.create_task_group() as group:
        group.start_soon(clock)
        for _ in range(args.clients):
            group.start_soon(client_task)
    elapsed = time.perf_counter() - started
    cpu_ms_per_call = None
    if args.server_pid:
        cpu = server_cpu_seconds(args.server_pid) - cpu_before
        cpu_ms_per_call = cpu * 1e3 / len(latencies)
    latencies.sort()

    def at(p: float) -> float:
        return latencies[round((len(latencies) - 1) * p)] * 1e3

    if args.json:
        print(
            json.dumps(
                {
                    "client": "MCP Python SDK",
                    "clients": args.clients,
                    "calls": len(latencies),
                    "failed": len(failures),
                    "seconds": elapsed,
                    "calls_per_s": len(latencies) / elapsed,
                    "p50_ms": at(0.5),
                    "p95_ms": at(0.95),
                    "p99_ms": at(0.99),
                    "max_ms": at(1.0),
                    "server_cpu_ms_per_call": cpu_ms_per_call,
                    "first_failure": failures[0] if failures else None,
                }
            )
        )
    else:
        cpu_text = "" if cpu_ms_per_call is None else f"; server CPU {cpu_ms_per_call:.3f} ms/call"
        print(
            f"{len(latencies)} calls by {args.clients} MCP SDK clients in {elapsed:.2f} s: "
            f"{len(latencies) / elapsed:.0f} calls/s; latency p50 {at(0.5):.3f} ms, "
            f"p95 {at(0.95):.3f} ms, p99 {at(0.99):.3f} ms; {len(failures)} failed{cpu_text}"
        )
    if failures:
        raise SystemExit(f"first failure: {failures[0]}")


if __name__ == "__main__":
    anyio.run(main)
