"""A fleet of three gateways shipping their audit logs to one real PostgreSQL (Debian's
`postgresql`: `initdb` into a temporary directory, `pg_ctl` on a free loopback port, stopped
afterwards), driven with the official MCP Python SDK while one gateway is SIGKILLed and
restarted and the database is stopped and restarted. Afterwards every answered call of every
replica is in PostgreSQL exactly once, `audit verify --postgres` passes, each local log still
verifies, and rows tampered with in PostgreSQL are found by name."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from mcp import Client

from conftest import HttpGateway, free_port, serve_args

pytestmark = pytest.mark.anyio

SUPERUSER_PASSWORD = "fleet-superuser-pw-1"
GATEWAY_PASSWORD = "fleet-gateway-pw-22"
GATEWAYS = ("gw-1", "gw-2", "gw-3")


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A PostgreSQL cluster of its own in `root`, as an unprivileged user when we are root
    (initdb and postgres refuse to run as root)."""

    def __init__(self, root: Path):
        self.bin = pg_bin()
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = "postgres"
            pwd.getpwnam(user)  # the Debian package creates it
            self.as_user = ["runuser", "-u", user, "--"]
            shutil.chown(root, user)
        pwfile = root / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        self.start()

    def run(self, tool: str, *args: str, check=True):
        return subprocess.run([*self.as_user, str(self.bin / tool), *args], check=check, capture_output=True, text=True, cwd=self.root)

    def start(self):
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self):
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def url(self, user="postgres", database="audit", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgres://{auth}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def psql(self) -> str:
        return str(self.bin / "psql") if (self.bin / "psql").exists() else "psql"

    def sql(self, statement: str, database="audit") -> str:
        result = subprocess.run(
            [self.psql(), "-X", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-c", statement],
            capture_output=True, text=True, env={**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD},
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        return result.stdout.strip()

    def sql_as(self, user: str, password: str, statement: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.psql(), "-X", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", "audit", "-c", statement],
            capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password},
        )


@pytest.fixture
def postgres():
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup installs Debian's postgresql)")
    # Not under pytest's temporary tree: its directories are private to us, and the server
    # runs as another user.
    root = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    try:
        pg = Postgres(root)
        try:
            yield pg
        finally:
            pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def gatehouse_run(gatehouse: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(gatehouse), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def local_rows(db: Path) -> list[tuple]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT seq, hex(entry_hash) FROM entries ORDER BY seq").fetchall()
    finally:
        connection.close()


class Replica:
    """One gateway of the fleet: its config, audit log and keys survive restarts."""

    def __init__(self, gatehouse, components, cache_dir, root: Path, gateway_id: str, pg: Postgres, require_shipped=False):
        self.gatehouse = gatehouse
        self.id = gateway_id
        self.dir = root / gateway_id
        self.dir.mkdir()
        self.audit = self.dir / "audit.db"
        password = self.dir / "pg-password"
        password.write_text(GATEWAY_PASSWORD + "\n")
        password.chmod(0o600)
        role = gateway_id.replace("-", "")
        config = self.dir / "gatehouse.toml"
        config.write_text(
            "[fleet]\n"
            f'gateway_id = "{gateway_id}"\n'
            f'postgres = "{pg.url(user=role)}"\n'
            'password = { file = "pg-password" }\n'
            "poll_ms = 50\n"
            f"require_shipped = {'true' if require_shipped else 'false'}\n"
            "ship_timeout_ms = 1500\n"
        )
        self.args = [*serve_args(components, cache_dir, names=("echo",), audit=self.audit), "--config", str(config)]
        self.gateway: HttpGateway | None = None
        self.answered = 0
        self.refused = 0

    def start(self):
        self.gateway = HttpGateway(self.gatehouse, self.args, env={"RUST_LOG": "info"})

    def kill(self):
        assert self.gateway is not None
        self.gateway.process.send_signal(signal.SIGKILL)
        self.gateway.process.wait()

    def stop(self):
        if self.gateway is not None:
            self.gateway.stop()

    async def calls(self, n: int, expect_refused=False):
        assert self.gateway is not None
        async with Client(self.gateway.url, read_timeout_seconds=60) as client:
            for i in range(n):
                result = await client.call_tool("echo_echo", {"message": f"{self.id} call {i}"})
                text = result.content[0].text if result.content else ""
                if expect_refused:
                    assert result.is_error, text
                    assert "require_shipped" in text, text
                    self.refused += 1
                else:
                    assert not result.is_error, text
                    self.answered += 1


def wait_for_line(gateway: HttpGateway, text: str, timeout=30.0) -> str:
    """The gateway's stderr once it holds `text` (read by a thread of its own)."""
    deadline = time.monotonic() + timeout
    while text not in (log := "".join(gateway.stderr_lines)):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log}"
        time.sleep(0.1)
    return log


def wait_until_shipped(pg: Postgres, replicas, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        pending = {}
        for r in replicas:
            local = len(local_rows(r.audit))
            # The schema may still be on its way (a gateway applies it on first connect).
            exists = pg.sql("SELECT to_regclass('entries') IS NOT NULL") == "t"
            shipped = int(pg.sql(f"SELECT count(*) FROM entries WHERE gateway_id = '{r.id}'")) if exists else 0
            if shipped != local:
                pending[r.id] = (shipped, local)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not shipped in time (shipped, local): {pending}")
        time.sleep(0.2)


def verify_fleet(gatehouse, pg: Postgres, replicas, *extra: str) -> subprocess.CompletedProcess:
    keys = []
    for r in replicas:
        keys += ["--gateway-key", f"{r.id}={r.dir / 'keys' / 'audit-checkpoint.key.pub'}"]
    return gatehouse_run(gatehouse, "audit", "verify", "--postgres", pg.url(user="auditor"), *keys, *extra, env={"PGPASSWORD": "fleet-auditor-pw-3"})


async def test_three_gateways_one_store_survive_a_killed_gateway_and_a_database_restart(gatehouse, components, cache_dir, tmp_path, postgres):
    pg = postgres
    pg.sql("CREATE DATABASE audit", database="postgres")
    init = gatehouse_run(gatehouse, "fleet", "init", "--postgres", pg.url(), env={"PGPASSWORD": SUPERUSER_PASSWORD})
    assert init.returncode == 0, init.stderr
    assert "schema version 1 applied" in init.stdout
    for gw in GATEWAYS:
        pg.sql(f"CREATE ROLE {gw.replace('-', '')} LOGIN PASSWORD '{GATEWAY_PASSWORD}' IN ROLE gatehouse_gateway")
    pg.sql("CREATE ROLE auditor LOGIN PASSWORD 'fleet-auditor-pw-3' IN ROLE gatehouse_auditor")

    replicas = [
        Replica(gatehouse, components, cache_dir, tmp_path, "gw-1", pg),
        Replica(gatehouse, components, cache_dir, tmp_path, "gw-2", pg),
        # Fail closed: no call without its verdict in the store.
        Replica(gatehouse, components, cache_dir, tmp_path, "gw-3", pg, require_shipped=True),
    ]
    gw1, gw2, gw3 = replicas
    try:
        for r in replicas:
            r.start()
        banner = wait_for_line(gw3.gateway, f"audit shipped to the fleet's store as gw-3: postgres gw3@127.0.0.1:{pg.port}/audit (require_shipped")
        assert GATEWAY_PASSWORD not in banner
        for r in replicas:
            await r.calls(5)

        # (a) gw-2 is killed mid-stream and restarted: it resumes after what the store holds.
        gw2.kill()
        await gw1.calls(3)
        gw2.start()
        await gw2.calls(4)

        # (b) The database stops: gw-1 and gw-2 keep answering (their logs are the truth),
        # gw-3 refuses calls, saying why; after the restart everything catches up.
        pg.stop()
        await gw1.calls(3)
        await gw2.calls(3)
        await gw3.calls(2, expect_refused=True)
        pg.start()
        # A waiting call wakes gw-3's shipper from its backoff: it serves again at once.
        await gw3.calls(3)
        await gw1.calls(2)
        wait_until_shipped(pg, replicas)

        # The gateways' role may neither change nor remove a shipped row.
        for statement in ["UPDATE entries SET verdict = 'deny' WHERE seq = 1", "DELETE FROM entries WHERE seq = 1", "DELETE FROM checkpoints"]:
            refused = pg.sql_as("gw1", GATEWAY_PASSWORD, statement)
            assert refused.returncode != 0 and "permission denied" in refused.stderr, (statement, refused.stderr)
        # Nor may the owner, short of disabling the triggers.
        with pytest.raises(RuntimeError, match="append-only"):
            pg.sql("DELETE FROM entries WHERE gateway_id = 'gw-1' AND seq = 1")

        # Every answered call of every replica is in the store exactly once, byte for byte.
        for r in replicas:
            outcomes = pg.sql(f"SELECT verdict, count(*) FROM entries WHERE gateway_id = '{r.id}' AND phase = 'outcome' AND tool = 'echo_echo' GROUP BY verdict ORDER BY 1")
            counts = dict(line.split("|") for line in outcomes.splitlines())
            assert int(counts.get("ok", 0)) == r.answered, (r.id, counts)
            assert int(counts.get("denied", 0)) == r.refused, (r.id, counts)
            stored = pg.sql(f"SELECT seq || ':' || upper(encode(entry_hash, 'hex')) FROM entries WHERE gateway_id = '{r.id}' ORDER BY seq").splitlines()
            assert stored == [f"{seq}:{h}" for seq, h in local_rows(r.audit)], r.id
        assert pg.sql("SELECT count(*) FROM (SELECT decision_id FROM entries GROUP BY 1 HAVING count(*) > 1) d") == "0"
        assert (gw1.answered, gw2.answered, gw3.answered, gw3.refused) == (13, 12, 8, 2)
        assert gw3.answered == 8
    finally:
        for r in replicas:
            r.stop()
    # The stopped gateways' final entries and checkpoints were shipped on the way out.
    wait_until_shipped(pg, replicas)

    verified = verify_fleet(gatehouse, pg, replicas)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for r in replicas:
        assert f"{r.id}: " in verified.stdout and "signatures checked" in verified.stdout
    for r in replicas:
        local = gatehouse_run(gatehouse, "audit", "verify", str(r.audit), "--key-dir", str(r.dir / "keys"))
        assert local.returncode == 0, local.stdout + local.stderr

    # The fleet as auditors see it: queries with the gateway as a column, stats, status.
    auditor = {"PGPASSWORD": "fleet-auditor-pw-3"}
    denied = gatehouse_run(gatehouse, "audit", "query", "--postgres", pg.url(user="auditor"), "--verdict", "denied", "--format", "json", env=auditor)
    assert denied.returncode == 0, denied.stderr
    rows = [json.loads(line) for line in denied.stdout.splitlines()]
    assert {row["gateway_id"] for row in rows} == {"gw-3"} and len(rows) == 2
    assert all("require_shipped" in " ".join(row["reasons"]) for row in rows)
    one = gatehouse_run(gatehouse, "audit", "query", "--postgres", pg.url(user="auditor"), "--gateway", "gw-2", "--phase", "call", "--format", "csv", env=auditor)
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0].startswith("gateway_id,seq,")
    assert len(lines) == 1 + gw2.answered and all(line.startswith("gw-2,") for line in lines[1:])
    call_id = pg.sql("SELECT call_id FROM entries WHERE gateway_id = 'gw-1' AND phase = 'call' ORDER BY seq LIMIT 1")
    story = gatehouse_run(gatehouse, "audit", "show", "--postgres", pg.url(user="auditor"), call_id, "--format", "json", env=auditor)
    assert story.returncode == 0, story.stderr
    steps = [json.loads(line) for line in story.stdout.splitlines()]
    assert [(s["gateway_id"], s["phase"], s["verdict"]) for s in steps] == [("gw-1", "call", "allow"), ("gw-1", "outcome", "ok")]
    stats = gatehouse_run(gatehouse, "audit", "stats", "--postgres", pg.url(user="auditor"), "--format", "json", env=auditor)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["calls"] == gw1.answered + gw2.answered + gw3.answered + gw3.refused
    status = gatehouse_run(gatehouse, "fleet", "status", "--postgres", pg.url(user="auditor"), "--format", "json", env=auditor)
    assert status.returncode == 0, status.stderr
    replicas_status = {s["gateway_id"]: s for s in map(json.loads, status.stdout.splitlines())}
    assert set(replicas_status) == set(GATEWAYS)
    for s in replicas_status.values():
        assert s["lag"] == 0 and s["policy_revision"] and s["components"][0][0] == "echo_echo"

    # Tampering in the store, as its superuser with the triggers off, is found by name.
    def as_superuser(statement: str):
        pg.sql(f"SET session_replication_role = replica; {statement}")

    def tampered(statement: str) -> str:
        as_superuser(statement)
        report = verify_fleet(gatehouse, pg, replicas)
        assert report.returncode == 1, report.stdout + report.stderr
        return report.stdout

    verdict = pg.sql("SELECT verdict FROM entries WHERE gateway_id = 'gw-1' AND seq = 3")
    out = tampered("UPDATE entries SET verdict = 'deny' WHERE gateway_id = 'gw-1' AND seq = 3")
    assert "FAILED gw-1: seq 3: entry 3: its content does not match its stored entry_hash" in out, out
    as_superuser(f"UPDATE entries SET verdict = '{verdict}' WHERE gateway_id = 'gw-1' AND seq = 3")
    assert verify_fleet(gatehouse, pg, replicas).returncode == 0

    out = tampered("CREATE TABLE saved AS SELECT * FROM entries WHERE gateway_id = 'gw-2' AND seq = 5; DELETE FROM entries WHERE gateway_id = 'gw-2' AND seq = 5")
    assert "FAILED gw-2: seq 5: entry 5 is missing (deleted)" in out, out
    as_superuser("INSERT INTO entries SELECT * FROM saved; DROP TABLE saved")
    assert verify_fleet(gatehouse, pg, replicas).returncode == 0

    last = int(pg.sql("SELECT max(seq) FROM entries WHERE gateway_id = 'gw-3'"))
    out = tampered(f"UPDATE entries SET gateway_id = 'gw-3', seq = {last + 1} WHERE gateway_id = 'gw-1' AND seq = 4")
    assert "FAILED gw-1: seq 4: entry 4 is missing (deleted)" in out, out
    assert f"FAILED gw-3: seq {last + 1}: entry {last + 1}: its content does not match its stored entry_hash" in out, out
    assert f"FAILED gw-3: the store holds entries up to seq {last + 1}, but gw-3 reported only {last}" in out, out


async def test_a_conflicting_resend_is_an_alarm_never_an_overwrite(gatehouse, components, cache_dir, tmp_path, postgres):
    """Two gateways configured with one id: what the store holds stays as it is, and the
    shipper says so (error log line, `gatehouse_fleet_conflicts_total`)."""
    pg = postgres
    pg.sql("CREATE DATABASE audit", database="postgres")
    # No `fleet init`: the first gateway applies the schema itself when its role may (here the
    # database's owner); the second finds it there.
    pg.sql(f"CREATE ROLE gwa LOGIN CREATEROLE PASSWORD '{GATEWAY_PASSWORD}'")
    pg.sql("ALTER DATABASE audit OWNER TO gwa")
    replica = Replica(gatehouse, components, cache_dir, tmp_path, "gw-a", pg)
    try:
        replica.start()
        await replica.calls(2)
        wait_until_shipped(pg, [replica])
        assert pg.sql("SELECT version FROM gatehouse_schema") == "1"
        # Another gateway's entry under gw-a's id, at the seq gw-a writes next.
        nxt = len(local_rows(replica.audit)) + 1
        pg.sql(f"INSERT INTO entries SELECT gateway_id, {nxt}, time, gen_random_uuid()::text, call_id, phase, caller, tool, component_digest, policy_revision, input, 'deny', reasons, obligations, metrics, entry_hash FROM entries WHERE gateway_id = 'gw-a' AND seq = 1")
        await replica.calls(1)
        wait_for_line(replica.gateway, "the store holds other content than the local log")
        metrics = urllib.request.urlopen(replica.gateway.url.removesuffix("/mcp") + "/metrics", timeout=10).read().decode()
        assert any(line.startswith("gatehouse_fleet_conflicts_total ") and float(line.split()[1]) >= 1 for line in metrics.splitlines()), metrics
        # Left as it was, and nothing of gw-a's after it: its chain in the store stops there.
        assert pg.sql(f"SELECT verdict FROM entries WHERE gateway_id = 'gw-a' AND seq = {nxt}") == "deny"
        assert int(pg.sql("SELECT max(seq) FROM entries WHERE gateway_id = 'gw-a'")) == nxt
        assert len(local_rows(replica.audit)) > nxt
        # A shipped log is not rotated (the store keeps one chain per id); the gateway goes on.
        replica.gateway.process.send_signal(signal.SIGUSR1)
        wait_for_line(replica.gateway, "SIGUSR1: not rotating the audit log")
        assert replica.gateway.process.poll() is None
        assert sorted(p.name for p in replica.dir.glob("audit*.db")) == ["audit.db"]
    finally:
        replica.stop()

    # A second log under the same id is refused at registration.
    (tmp_path / "twin").mkdir()
    twin = Replica(gatehouse, components, cache_dir, tmp_path / "twin", "gw-a", pg)
    try:
        twin.start()
        wait_for_line(twin.gateway, "is registered with the log")
    finally:
        twin.stop()
    assert int(pg.sql("SELECT max(seq) FROM entries WHERE gateway_id = 'gw-a'")) == nxt
