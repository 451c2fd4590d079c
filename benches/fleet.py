"""Shipping the audit log to the fleet's PostgreSQL store (src/fleet/ship.rs), measured with real
parts: Debian's PostgreSQL started as in tests/e2e/test_fleet.py, gateways over streamable HTTP,
load from `gatehouse bench`.

1. Throughput: each gateway builds a backlog while the database is down, then ships it when it
   is back; entries/s = entries / (last - first `shipped` time in the store), for one gateway
   and for three at once.
2. What shipping costs a call: `gatehouse bench` against one gateway with shipping off, one
   with shipping on and one with `require_shipped`, taking turns in the same run (ratios of
   calls/s and of p50 to off), and the largest lag (`gatehouse_fleet_lag_entries`) seen while
   the shipping one is under that load.

Usage: python benches/fleet.py --gatehouse target/release/gatehouse --component ECHO_WASM
       [--cache-dir DIR] [--calls 4000] [--clients 16] [--rounds 3]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from conftest import ALLOW_ALL_POLICY, HttpGateway  # noqa: E402
from test_fleet import GATEWAY_PASSWORD, SUPERUSER_PASSWORD, Postgres  # noqa: E402


def gateway(binary: Path, root: Path, name: str, component: Path, cache: Path, pg: Postgres | None, require_shipped=False) -> HttpGateway:
    directory = root / name
    directory.mkdir(exist_ok=True)
    config = directory / "gatehouse.toml"
    text = ""
    if pg is not None:
        (directory / "pw").write_text(GATEWAY_PASSWORD)
        (directory / "pw").chmod(0o600)
        text = f'[fleet]\ngateway_id = "{name}"\npostgres = "{pg.url(user="gw")}"\npassword = {{ file = "pw" }}\nrequire_shipped = {str(require_shipped).lower()}\n'
    config.write_text(text)
    args = ["serve", "--config", str(config), "--cache-dir", str(cache), "--audit", str(directory / "audit.db"),
            "--audit-key-dir", str(directory / "keys"), "--policies", str(ALLOW_ALL_POLICY), "--component", str(component)]
    return HttpGateway(binary, args, env={"RUST_LOG": "warn"})


def bench(binary: Path, url: str, calls: int, clients: int) -> dict:
    out = subprocess.run([str(binary), "bench", "--url", url, "--calls", str(calls), "--clients", str(clients), "--json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def shipped_rate(pg: Postgres, names: list[str], since: str) -> tuple[int, float]:
    """Entries shipped after the database came back, over the time from the first to the last
    of them (the shippers' reconnection backoff before the first batch is not counted)."""
    row = pg.sql("SELECT count(*), extract(epoch FROM max(shipped) - min(shipped)) FROM entries WHERE gateway_id IN ("
                 + ",".join(f"'{n}'" for n in names) + f") AND shipped >= '{since}'")
    count, seconds = row.split("|")
    return int(count), float(seconds)


def wait_shipped(pg: Postgres, root: Path, names: list[str], timeout=600.0):
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = True
        for n in names:
            local = sqlite3.connect(f"file:{root / n / 'audit.db'}?mode=ro", uri=True).execute("SELECT max(seq) FROM entries").fetchone()[0]
            shipped = pg.sql(f"SELECT coalesce(max(seq), 0) FROM entries WHERE gateway_id = '{n}'")
            done &= int(shipped) == int(local or 0)
        if done:
            return
        time.sleep(0.2)
    raise SystemExit("the backlog was not shipped in time")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gatehouse", type=Path, required=True)
    parser.add_argument("--component", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gatehouse-fleet-bench-"))
    cache = a.cache_dir or work / "cache"
    pg_root = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    pg_root.chmod(0o755)
    pg = Postgres(pg_root)
    result: dict = {}
    started: list[HttpGateway] = []
    try:
        pg.sql("CREATE DATABASE audit", database="postgres")
        subprocess.run([str(a.gatehouse), "fleet", "init", "--postgres", pg.url()], check=True, capture_output=True,
                       env={**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD})
        pg.sql(f"CREATE ROLE gw LOGIN PASSWORD '{GATEWAY_PASSWORD}' IN ROLE gatehouse_gateway")

        # 1. Throughput: backlogs built while the database is down, shipped when it is back.
        for label, names in (("one", ["t1"]), ("three", ["t2", "t3", "t4"])):
            gateways = [gateway(a.gatehouse, work, n, a.component, cache, pg) for n in names]
            started += gateways
            pg.stop()
            threads = [threading.Thread(target=bench, args=(a.gatehouse, g.url, a.calls, a.clients)) for g in gateways]
            [t.start() for t in threads]
            [t.join() for t in threads]
            pg.start()
            back = pg.sql("SELECT now()")
            wait_shipped(pg, work, names)
            count, seconds = shipped_rate(pg, names, back)
            each = {}
            for n in names:
                c, s = shipped_rate(pg, [n], back)
                each[n] = {"entries": c, "seconds": round(s, 3), "entries_per_s": round(c / s) if s else None}
            # With three, the window runs from the first shipper's first batch to the last one's
            # last: the shippers reconnect after backoffs of their own, so it is a lower bound.
            result[f"ship_{label}_gateway"] = {"entries": count, "seconds": round(seconds, 3), "entries_per_s": round(count / seconds) if seconds else None, "each": each}
            for g in gateways:
                g.stop()

        # 2. The cost of shipping for a call, same run, alternating.
        off = gateway(a.gatehouse, work, "off", a.component, cache, None)
        on = gateway(a.gatehouse, work, "on", a.component, cache, pg)
        required = gateway(a.gatehouse, work, "required", a.component, cache, pg, require_shipped=True)
        started += [off, on, required]
        lag = {"max": 0}
        stop = threading.Event()

        def sample():
            metrics = on.url.removesuffix("/mcp") + "/metrics"
            while not stop.is_set():
                with urllib.request.urlopen(metrics, timeout=5) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("gatehouse_fleet_lag_entries "):
                            lag["max"] = max(lag["max"], int(float(line.split()[1])))
                time.sleep(0.05)

        rounds = {"off": [], "on": [], "required": []}
        for _ in range(a.rounds):
            rounds["off"].append(bench(a.gatehouse, off.url, a.calls, a.clients))
            sampler = threading.Thread(target=sample)
            sampler.start()
            rounds["on"].append(bench(a.gatehouse, on.url, a.calls, a.clients))
            stop.set()
            sampler.join()
            stop.clear()
            rounds["required"].append(bench(a.gatehouse, required.url, a.calls, a.clients))
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("calls_per_s", "p50_ms", "p99_ms")} for k, v in rounds.items()}
        result["per_call"] = {
            "off": med["off"],
            "on": med["on"],
            "calls_per_s_ratio_on_off": round(med["on"]["calls_per_s"] / med["off"]["calls_per_s"], 3),
            "p50_ratio_on_off": round(med["on"]["p50_ms"] / med["off"]["p50_ms"], 3),
            "required": med["required"],
            "calls_per_s_ratio_required_off": round(med["required"]["calls_per_s"] / med["off"]["calls_per_s"], 3),
            "p50_ratio_required_off": round(med["required"]["p50_ms"] / med["off"]["p50_ms"], 3),
            "max_lag_entries_under_load": lag["max"],
            "calls": a.calls,
            "clients": a.clients,
            "rounds": a.rounds,
        }
        print(json.dumps(result, indent=2))
    finally:
        for g in started:
            g.stop()
        pg.stop()
        import shutil

        shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
