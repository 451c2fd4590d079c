"""The audit log as an auditor relies on it, driven through the official MCP Python SDK: a
gateway killed with SIGKILL under load has recorded every call its clients saw answered and
still verifies; values the policy asks to redact never reach the file in clear."""

from __future__ import annotations

import json
import subprocess

import anyio
import pytest
from mcp import Client

from conftest import REPO, audit_rows, client_for, http_gateway, serve_args

pytestmark = pytest.mark.anyio


async def test_sigkill_loses_no_answered_call_and_the_log_verifies(gatehouse, components, cache_dir, tmp_path):
    db = tmp_path / "audit.db"
    answered: list[str] = []
    with http_gateway(gatehouse, serve_args(components, cache_dir, names=("echo",), audit=db)) as gateway:

        async def agent(number: int):
            async with Client(gateway.url, read_timeout_seconds=10) as client:
                for i in range(10_000):
                    message = f"agent{number}-call{i}"
                    result = await client.call_tool("echo_echo", {"message": message})
                    assert not result.is_error
                    answered.append(message)

        with pytest.raises(BaseException):
            async with anyio.create_task_group() as group:
                for number in range(4):
                    group.start_soon(agent, number)
                with anyio.fail_after(120):
                    while len(answered) < 60:
                        await anyio.sleep(0.01)
                gateway.process.kill()  # SIGKILL, mid-run: calls are in flight
                gateway.process.wait()
    assert len(answered) >= 60
    calls = dict(audit_rows(db, "SELECT call_id, json_extract(input, '$.arguments.message') FROM entries WHERE phase = 'call' AND verdict = 'allow'"))
    ok = {call_id for (call_id,) in audit_rows(db, "SELECT call_id FROM entries WHERE phase = 'outcome' AND verdict = 'ok'")}
    recorded = {message for call_id, message in calls.items() if call_id in ok}
    missing = [message for message in answered if message not in recorded]
    assert not missing, f"{len(missing)} answered calls have no verdict+outcome in the log: {missing[:5]}"
    verify = subprocess.run([gatehouse, "audit", "verify", db], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "OK:" in verify.stdout


async def test_redacted_arguments_never_appear_in_the_file(gatehouse, components, cache_dir, tmp_path):
    db = tmp_path / "audit.db"
    secret = "hunter2-SUPER-SECRET-7f3a"
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["echo_*"]}},
        "redact": {"argument_names": ["message"]},
    }))
    args = serve_args(components, cache_dir, "--policy-data", str(data), names=("echo",), policies=REPO / "policies", audit=db)
    async with client_for("stdio", gatehouse, args) as client:
        for _ in range(2):
            result = await client.call_tool("echo_echo", {"message": secret})
            assert result.structured_content == {"result": secret}
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("audit.db*") if path.is_file())
    assert secret.encode() not in raw
    masked = [json.loads(text) for (text,) in audit_rows(db, "SELECT json_extract(input, '$.arguments.message') FROM entries WHERE phase = 'call'")]
    assert len(masked) == 2 and masked[0] == masked[1], masked  # equal values stay linkable
    assert set(masked[0]) == {"redacted"} and masked[0]["redacted"].startswith("hmac-sha256:")
    # The stdio caller is the configured principal, identified by the transport, with no claims.
    callers = [json.loads(c) for (c,) in audit_rows(db, "SELECT caller FROM entries WHERE phase = 'call'")]
    assert [(c["principal"], c["auth"], c["claims"]) for c in callers] == [("local", "stdio", {})] * 2


async def test_audit_show_tells_the_whole_story_of_a_call(gatehouse, components, cache_dir, tmp_path, web):
    """One call through the MCP SDK makes an allowed and a denied HTTP request and a denied
    file write; `gatehouse audit show` lays out every decision of it, in order."""
    db = tmp_path / "audit.db"
    (tmp_path / "data").mkdir()
    port = web.rsplit(":", 1)[1]
    data = tmp_path / "data.json"
    data.write_text(json.dumps({
        "settings": {"mode": "dev"},
        "principals": {"local": {"tools": ["escape_*"]}},
        "http": {"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allow_private": True},
        "fs": {"allowed_prefixes": ["/data"]},
    }))
    args = serve_args(components, cache_dir, "--policy-data", str(data), "--dir", f"{tmp_path / 'data'}::/data::rw",
                      names=("escape",), policies=REPO / "policies", audit=db)
    async with client_for("stdio", gatehouse, args) as client:
        result = await client.call_tool("escape_visit", {
            "urls": [f"{web}/hello", f"http://localhost:{port}/hello"],
            "write-path": "/data/report.txt",
        })
        assert not result.is_error
        lines = result.structured_content["result"]
        assert lines[0].startswith("succeeded: status 200"), lines
        assert lines[1].startswith("refused:") and "HttpRequestDenied" in lines[1], lines
        assert lines[2].startswith("refused:"), lines
    assert not (tmp_path / "data" / "report.txt").exists()

    [(call_id,)] = audit_rows(db, "SELECT call_id FROM entries WHERE phase = 'call' AND tool = 'escape_visit'")
    story = [tuple(row) for row in audit_rows(db, f"SELECT phase, verdict FROM entries WHERE call_id = '{call_id}' ORDER BY seq")]
    assert story == [("call", "allow"), ("http", "allow"), ("http", "deny"), ("fs", "deny"), ("result", "allow"), ("outcome", "ok")]

    # The canned views answer "where did it try to go, what did it try to touch" directly.
    egress = audit_rows(db, f"SELECT verdict, scheme, host, port, path FROM egress WHERE call_id = '{call_id}' ORDER BY seq")
    assert egress == [("allow", "http", "127.0.0.1", int(port), "/hello"), ("deny", "http", "localhost", int(port), "/hello")]
    files = audit_rows(db, f"SELECT verdict, operation, path, access, mount FROM file_access WHERE call_id = '{call_id}'")
    assert files == [("deny", "open-at", "/data/report.txt", "write", "/data")]

    show = subprocess.run([gatehouse, "audit", "show", db, call_id], capture_output=True, text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    timeline = show.stdout
    for expected in ("escape_visit", "http", f"127.0.0.1:{port}", "localhost", 'host "localhost" is not in http.allowed_domains',
                     "/data/report.txt", "not under a writable prefix (fs.writable)", "outcome"):
        assert expected in timeline, f"{expected!r} missing from:\n{timeline}"
    assert timeline.index('not in http.allowed_domains') < timeline.index("not under a writable prefix")
    verify = subprocess.run([gatehouse, "audit", "verify", db], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_sigusr1_rotates_the_log_without_deleting_a_row(gatehouse, components, cache_dir, tmp_path):
    import os
    import signal

    db = tmp_path / "audit.db"
    with http_gateway(gatehouse, serve_args(components, cache_dir, names=("echo",), audit=db)) as gateway:
        async with Client(gateway.url, read_timeout_seconds=10) as client:
            for message in ("before", "rotation"):
                assert not (await client.call_tool("echo_echo", {"message": message})).is_error
            gateway.process.send_signal(signal.SIGUSR1)
            rotated = []
            with anyio.fail_after(20):
                while not rotated:
                    await anyio.sleep(0.05)
                    rotated = sorted(tmp_path.glob("audit.*Z.db"))
            with anyio.fail_after(20):
                while not any("audit log rotated" in line for line in gateway.stderr_lines):
                    await anyio.sleep(0.05)
            assert not (await client.call_tool("echo_echo", {"message": "after"})).is_error
    [new] = rotated
    old_calls = audit_rows(db, "SELECT json_extract(input, '$.arguments.message') FROM entries WHERE phase = 'call'")
    new_calls = audit_rows(new, "SELECT json_extract(input, '$.arguments.message') FROM entries WHERE phase = 'call'")
    assert [m for (m,) in old_calls] == ["before", "rotation"] and [m for (m,) in new_calls] == ["after"]
    [(first_phase, first_input)] = audit_rows(new, "SELECT phase, input FROM entries ORDER BY seq LIMIT 1")
    assert first_phase == "lifecycle" and str(db) in first_input
    for path in (db, new):
        verify = subprocess.run([gatehouse, "audit", "verify", path], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_a_fresh_gateway_names_its_signing_key_in_the_banner_and_verify_uses_it(gatehouse, components, cache_dir, tmp_path):
    db = tmp_path / "audit.db"
    keys = tmp_path / "keys"
    with http_gateway(gatehouse, serve_args(components, cache_dir, names=("echo",), audit=db)) as gateway:
        async with Client(gateway.url, read_timeout_seconds=10) as client:
            assert not (await client.call_tool("echo_echo", {"message": "hi"})).is_error
        public = (keys / "audit-checkpoint.key.pub").read_text().strip()
        banner = "".join(gateway.stderr_lines)
        assert f"audit checkpoints signed with {keys / 'audit-checkpoint.key'} (public key: {public})" in banner, banner
    assert all(signed for (signed,) in audit_rows(db, "SELECT signed FROM checkpoints"))
    verify = subprocess.run([gatehouse, "audit", "verify", db, "--key-dir", keys], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"signatures checked with {'+'.join(public.split('+')[:2])}" in verify.stdout, verify.stdout
