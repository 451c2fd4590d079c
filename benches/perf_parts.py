"""Splits a CPU profile of a Gatehouse server into the parts of a call, with each part's share
and its CPU time per call (docs/bench-log/2026-12-06-http-baseline.md).

    perf record -e cpu-clock -F 497 --call-graph dwarf,12288 -p PID -o gh.data -- sleep 7
    perf script -i gh.data -F comm,tid,ip,sym,dso > gh.script
    python3 benches/perf_parts.py gh.script CPU_MS_PER_CALL

CPU_MS_PER_CALL is the load generator's `server CPU` figure for the same run (`--server-pid`).
A sample goes to the file watcher if `fsnotify`/`inotify` is anywhere in its stack or it ran on
the watcher's thread; to a part of the audit writer by its thread and stack; otherwise to the
first part whose pattern matches a frame, scanning from the leaf. Allocation is counted inside
the part that allocates and again, separately, as "allocator leaf frames".
"""

from __future__ import annotations

import collections
import re
import sys

WATCHER = "file watcher: inotify events of writes in watched dirs (notify thread + raising them)"
# (part, regex on a frame of the audit writer thread); checked in order.
WRITER = [
    ("audit writer: fsync (kernel, block I/O)", r"fsync|fdatasync|blk_|jbd2|virtio"),
    ("audit writer: write syscalls (WAL frames into the page cache)", r"vfs_write|pwrite"),
    ("audit writer: SQLite (statements, B-trees, WAL)", r"sqlite3|rusqlite|pcache|walChecksum|Vdbe"),
    ("audit writer: waiting for entries (channel, park)", r"recv|park"),
]
THREADS = [
    ("audit: WAL checkpoint thread", "audit-wal"),
    ("wasm epoch ticker", "gatehouse-epoch"),
]
# (part, regex on a frame's symbol); the first match from the leaf wins.
FRAMES = [
    ("policy: regorus evaluation", r"^regorus::|gatehouse::policy::"),
    ("policy: input documents", r"gatehouse::policy::input::"),
    ("audit callers: redaction, canonical JSON, leaf hash, queue", r"gatehouse::audit::"),
    ("wasm: instantiate + run (wasmtime, runtime, host)",
     r"wasmtime|cranelift|gatehouse::runtime::|gatehouse::host::|^wasm\[|wit_json|wasm-function"),
    ("gateway: pipeline glue (ids, time, records, admission)", r"gatehouse::gateway"),
    ("mcp/http guards: JSON-RPC re-parse, auth, session owner",
     r"gatehouse::mcp::http|gatehouse::mcp::jsonrpc|gatehouse::mcp::sessions"),
    ("mcp handler (gatehouse::mcp)", r"gatehouse::mcp::"),
    ("logging (tracing)", r"^tracing|tracing_subscriber|gatehouse::logging"),
    ("common: rmcp (JSON-RPC, sessions, SSE)", r"^rmcp::|<rmcp::"),
    ("common: HTTP server (hyper, axum, tower)", r"hyper|axum|tower"),
    ("common: tokio runtime (scheduling, parking, I/O driver)", r"tokio::|mio::"),
]
ALLOCATOR = re.compile(r"^_?mi_|mimalloc|^malloc|^free$|^__libc_(malloc|free)|^realloc")


def samples(lines):
    """(thread name, [symbol, leaf first]) of every sample of `perf script` output."""
    head, frames = None, []
    for line in lines:
        if not line.strip():
            if head:
                yield head, frames
            head, frames = None, []
        elif line[0] not in " \t":
            head, frames = line.split()[0], []
        else:
            parts = line.strip().split(" ", 1)
            symbol = parts[1].rsplit(" (", 1)[0] if len(parts) > 1 else "?"
            frames.append(re.sub(r"\+0x[0-9a-f]+$", "", symbol))
    if head:
        yield head, frames


def part_of(thread: str, frames: list[str]) -> str:
    if thread.startswith("notify-rs") or any("fsnotify" in f or "inotify" in f for f in frames):
        return WATCHER
    if thread.startswith("audit-writer"):
        for part, pattern in WRITER:
            if any(re.search(pattern, f) for f in frames):
                return part
        return "audit writer: other (leaf hashes, replies, batching)"
    for part, prefix in THREADS:
        if thread.startswith(prefix):
            return part
    for frame in frames:
        for part, pattern in FRAMES:
            if re.search(pattern, frame):
                return part
    return "other (unresolved stack)"


def main() -> None:
    script, ms_per_call = sys.argv[1], float(sys.argv[2])
    parts: collections.Counter[str] = collections.Counter()
    allocator = total = 0
    with open(script) as lines:
        for thread, frames in samples(lines):
            total += 1
            parts[part_of(thread, frames)] += 1
            if frames and ALLOCATOR.search(frames[0]):
                allocator += 1
    print("| part | share | ms/call |\n| --- | ---: | ---: |")
    for part, n in parts.most_common():
        print(f"| {part} | {n / total * 100:.1f} % | {n / total * ms_per_call:.3f} |")
    print(f"| allocator leaf frames (inside the parts above) | {allocator / total * 100:.1f} % "
          f"| {allocator / total * ms_per_call:.3f} |")
    print(f"| total ({total} samples) | 100 % | {ms_per_call:.3f} |")


if __name__ == "__main__":
    main()
