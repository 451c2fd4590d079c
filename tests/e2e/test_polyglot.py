"""Tools written in Python (componentize-py) and JavaScript (componentize-js), served by the
gateway and driven through the official MCP Python SDK like the Rust ones: listed with their
WIT docs and schemas, their HTTP requests, file operations and settings reads decided by the
bundled policy and recorded in the audit log, their log lines sent to the client."""

from __future__ import annotations

import json
import subprocess
import warnings

import pytest

from conftest import REPO, audit_rows, client_for, serve_args

pytestmark = pytest.mark.anyio
POLICIES = REPO / "policies"


def text_of(result) -> str:
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def story(db, call_id):
    """(phase, verdict) of every entry of one call, in order."""
    return [tuple(row) for row in audit_rows(db, f"SELECT phase, verdict FROM entries WHERE call_id = '{call_id}' ORDER BY seq")]


def call_ids(db, tool):
    return [row[0] for row in audit_rows(db, f"SELECT call_id FROM entries WHERE phase = 'call' AND tool = '{tool}' ORDER BY seq")]


def audit_show(gatehouse, db, call_id) -> str:
    show = subprocess.run([gatehouse, "audit", "show", db, call_id], capture_output=True, text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    return show.stdout


def policy_data(tmp_path, **sections) -> str:
    path = tmp_path / "policy-data.json"
    path.write_text(json.dumps({"settings": {"mode": "dev"}, **sections}))
    return str(path)


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_python_and_javascript_tools_are_listed_with_docs_and_schemas(transport, gatehouse, components, polyglot_cache, tmp_path):
    args = serve_args(components, polyglot_cache, names=("py-files", "js-fetch"), audit=tmp_path / "audit.db")
    async with client_for(transport, gatehouse, args) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"py-files_read-setting", "py-files_read-file", "py-files_read-configured-file", "js-fetch_fetch-text", "js-fetch_fetch-all"}
    fetch = tools["js-fetch_fetch-text"]
    assert fetch.description.startswith("Fetches `url` with GET and returns `<status> <body>`.")
    assert fetch.input_schema["properties"] == {"url": {"type": "string"}}
    assert fetch.input_schema["required"] == ["url"]
    read = tools["py-files_read-configured-file"]
    assert read.description.startswith("Reads the file the setting `key` names")
    assert read.input_schema["properties"] == {"key": {"type": "string"}}
    setting = tools["py-files_read-setting"]
    # result<option<string>, string>: the ok case is a string or null.
    assert setting.output_schema["properties"]["result"]["oneOf"][0]["properties"]["ok"] == {"anyOf": [{"type": "null"}, {"type": "string"}]}


async def test_a_javascript_tool_fetches_what_the_policy_allows_and_logs(gatehouse, components, polyglot_cache, tmp_path, web_server):
    """`fetch` in JavaScript goes out through `wasi:http`: each request is decided by the
    `http` policy; an allowed one reaches the server, a denied one never does, and the call's
    audit story and `audit show` have both, with the tool's log lines."""
    db = tmp_path / "audit.db"
    port = web_server.url.rsplit(":", 1)[1]
    data = policy_data(tmp_path, principals={"local": {"tools": ["js-fetch_*"]}},
                       http={"allowed_domains": ["127.0.0.1"], "allowed_schemes": ["http"], "allow_private": True})
    args = serve_args(components, polyglot_cache, "--policy-data", data, names=("js-fetch",), policies=POLICIES, audit=db)
    heard = []

    async def on_log(params):
        heard.append((params.level, params.data["message"]))

    async with client_for("stdio", gatehouse, args, logging_callback=on_log) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK marks MCP logging deprecated (SEP-2577)
            await client.set_logging_level("info")
        allowed = await client.call_tool("js-fetch_fetch-text", {"url": f"{web_server.url}/hello"})
        assert not allowed.is_error, text_of(allowed)
        assert allowed.structured_content == {"result": {"ok": "200 hello from the test server"}}
        # Two requests in one call: the first host is allowed, the second is not listed.
        both = await client.call_tool("js-fetch_fetch-all", {"urls": [f"{web_server.url}/hello", f"http://localhost:{port}/secret"]})
        assert not both.is_error, text_of(both)
        first_line, second_line = both.structured_content["result"]
        assert first_line == "200 hello from the test server"
        assert second_line.startswith("failed:"), second_line
        # An argument named `url` with a host the policy does not list is denied before the
        # tool runs.
        refused = await client.call_tool("js-fetch_fetch-text", {"url": f"http://localhost:{port}/secret"})
        assert refused.is_error and 'domain "localhost" is not in http.allowed_domains' in text_of(refused)

    # The server saw the two allowed requests, never the denied ones.
    assert web_server.paths == ["/hello", "/hello"]
    assert ("info", f"GET {web_server.url}/hello: 200, 26 bytes") in heard, heard
    assert ("warning", next(m for _, m in heard if m.startswith(f"GET http://localhost:{port}/secret failed"))) in heard

    [fetch_id, refused_id] = call_ids(db, "js-fetch_fetch-text")
    assert story(db, fetch_id) == [("call", "allow"), ("log", "info"), ("http", "allow"), ("log", "info"), ("result", "allow"), ("outcome", "ok")]
    assert story(db, refused_id) == [("call", "deny"), ("outcome", "denied")]
    [both_id] = call_ids(db, "js-fetch_fetch-all")
    assert story(db, both_id) == [
        ("call", "allow"),
        ("log", "info"), ("http", "allow"), ("log", "info"),
        ("log", "info"), ("http", "deny"), ("log", "warn"),
        ("result", "allow"), ("outcome", "ok"),
    ]
    egress = audit_rows(db, f"SELECT verdict, host, path FROM egress WHERE call_id = '{both_id}' ORDER BY seq")
    assert egress == [("allow", "127.0.0.1", "/hello"), ("deny", "localhost", "/secret")]
    timeline = audit_show(gatehouse, db, both_id)
    for expected in ("js-fetch_fetch-all", f"127.0.0.1:{port}", 'host "localhost" is not in http.allowed_domains', "GET http://localhost"):
        assert expected in timeline, f"{expected!r} missing from:\n{timeline}"
    assert timeline.index("127.0.0.1") < timeline.index('host "localhost" is not in http.allowed_domains')


async def test_a_python_tool_reads_settings_and_files_as_the_policy_decides(gatehouse, components, polyglot_cache, tmp_path):
    """Python's `open` goes through `wasi:filesystem` and its settings through
    `wasi:config/store`: each file operation is decided by the `fs` policy and each settings
    read by the `config` policy, and the call's audit story shows both."""
    db = tmp_path / "audit.db"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("notes from the host")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "secret.txt").write_text("not for tools")
    data_dir, private_dir = tmp_path / "data", tmp_path / "private"
    config = tmp_path / "gatehouse.toml"
    config.write_text(f"""
[[components]]
path = "{components['py-files']}"
config = {{ notes = "/data/notes.txt", hidden = "/private/secret.txt", region = "eu" }}

[[mounts]]
host = "{data_dir}"
guest = "/data"

[[mounts]]
host = "{private_dir}"
guest = "/private"
""")
    data = policy_data(tmp_path, principals={"local": {"tools": ["py-files_*"]}},
                       fs={"allowed_prefixes": ["/data"]}, config={"withheld": {"py-files": ["region"]}})
    args = serve_args(components, polyglot_cache, "--config", str(config), "--policy-data", data, names=(), policies=POLICIES, audit=db)
    async with client_for("stdio", gatehouse, args) as client:
        notes = await client.call_tool("py-files_read-configured-file", {"key": "notes"})
        assert notes.structured_content == {"result": {"ok": "notes from the host"}}, text_of(notes)
        # The setting is readable; the file it names is in a mount the policy does not allow.
        hidden = await client.call_tool("py-files_read-configured-file", {"key": "hidden"})
        assert hidden.is_error and "not for tools" not in text_of(hidden)
        assert "read-file /private/secret.txt" in text_of(hidden), text_of(hidden)
        # A withheld setting is refused by the `config` policy inside the tool.
        region = await client.call_tool("py-files_read-setting", {"key": "region"})
        assert region.is_error and "Error_Upstream(denied by policy:" in text_of(region), text_of(region)
        # A path argument outside the allowed prefixes is denied before the tool runs.
        direct = await client.call_tool("py-files_read-file", {"path": "/private/secret.txt"})
        assert direct.is_error and "outside fs.allowed_prefixes" in text_of(direct), text_of(direct)

    notes_id, hidden_id = call_ids(db, "py-files_read-configured-file")
    assert story(db, notes_id) == [("call", "allow"), ("config", "allow"), ("log", "info"), ("fs", "allow"), ("result", "allow"), ("outcome", "ok")]
    assert story(db, hidden_id)[:4] == [("call", "allow"), ("config", "allow"), ("log", "info"), ("fs", "deny")]
    [region_id] = call_ids(db, "py-files_read-setting")
    assert story(db, region_id)[:2] == [("call", "allow"), ("config", "deny")]
    [direct_id] = call_ids(db, "py-files_read-file")
    assert story(db, direct_id) == [("call", "deny"), ("outcome", "denied")]
    # The settings reads are in the audit log with their keys, never their values.
    reads = audit_rows(db, "SELECT verdict, json_extract(input, '$.config.key') FROM entries WHERE phase = 'config' ORDER BY seq")
    assert reads == [("allow", "notes"), ("allow", "hidden"), ("deny", "region")]
    values = audit_rows(db, "SELECT count(*) FROM entries WHERE input LIKE '%/data/notes.txt%' AND phase = 'config'")
    assert values == [(0,)]
    files = audit_rows(db, "SELECT verdict, path, mount FROM file_access ORDER BY seq")
    assert ("allow", "/data/notes.txt", "/data") in files and ("deny", "/private/secret.txt", "/private") in files, files
    timeline = audit_show(gatehouse, db, hidden_id)
    for expected in ("py-files_read-configured-file", "config", "hidden", "/private/secret.txt", "fs.allowed_prefixes"):
        assert expected in timeline, f"{expected!r} missing from:\n{timeline}"
