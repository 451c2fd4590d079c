# Shared inputs and data for the tests. A `_test.rego` file, so it is loaded for
# `gatehouse policy test` and bundle reloads, never served.
package fixtures

digest := "sha256:1111111111111111111111111111111111111111111111111111111111111111"

caller := {
	"principal": "alice",
	"authenticated": true,
	"transport": "http",
	"client": {"name": "test-agent", "version": "1.0.0"},
}

tool := {
	"name": "files_read_file",
	"function": "read-file",
	"interface": null,
	"component": {"name": "files", "digest": digest, "source": "components/files.wasm"},
}

# A session in which nothing was decided yet (input.session).
session := {"id": "s-0193a1b2-0000-7000-8000-000000000001", "started": "2026-11-22T03:00:00.000Z", "labels": [], "decisions": 0, "history": []}

call_input := {
	"session": session,
	"phase": "call",
	"time": "2026-11-22T03:04:05.123Z",
	"call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
	"caller": caller,
	"tool": tool,
	"arguments": {},
	"nodes": {"arguments": []},
}

list_input := {
	"session": session,
	"phase": "list",
	"time": "2026-11-22T03:04:05.123Z",
	"caller": caller,
	"tool": tool,
}

http_input := {
	"session": session,
	"phase": "http",
	"time": "2026-11-22T03:04:05.123Z",
	"call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
	"caller": caller,
	"tool": tool,
	"arguments": {},
	"request": {
		"method": "GET",
		"scheme": "https",
		"host": "api.example.com",
		"port": 443,
		"path": "/v1/items",
		"query": "page=2",
		"headers": {"accept": "application/json", "authorization": "***"},
		"resolved_ips": ["93.184.215.14"],
		"addresses": [{"ip": "93.184.215.14", "class": "global", "embedded_ipv4": null, "embedding": null}],
		"body_size": 0,
	},
}

fs_input := {
	"session": session,
	"phase": "fs",
	"time": "2026-11-22T03:04:05.123Z",
	"call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
	"caller": caller,
	"tool": tool,
	"arguments": {},
	"fs": {"operation": "open", "path": "/data/report.csv", "mount": "/data", "access": "read"},
}

config_input := {
	"session": session,
	"phase": "config",
	"time": "2026-11-22T03:04:05.123Z",
	"call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
	"caller": caller,
	"tool": tool,
	"arguments": {},
	"config": {"operation": "get", "key": "greeting", "present": true, "keys": ["greeting", "region"]},
}

result_input := {
	"session": session,
	"phase": "result",
	"time": "2026-11-22T03:04:05.123Z",
	"call": {"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
	"caller": caller,
	"tool": tool,
	"arguments": {},
	"result": {"ok": true, "size": 17, "value": {"rows": 3}},
	"nodes": {"arguments": [], "result": [[["rows"], 3]]},
}

# Data of a configured deployment (the shipped data.json allows nothing).
principals := {
	"alice": {"tools": ["files_*"]},
	"bob": {"tools": ["files_read_file"], "limits": {"timeout_ms": 1000}},
}

components := {"allowed_digests": [digest]}

http := {"allowed_domains": ["example.com"], "allow_private": false}

fs := {"allowed_prefixes": ["/data", "/tmp/work"], "writable": ["/tmp/work"]}

# `base` with `changes` merged in (recursively, like object.union).
patch(base, changes) := object.union(base, changes)

# `doc` as the gateway serves it: with `input.nodes` listed from its arguments and result value
# (src/policy/nodes.rs does this in Rust before every evaluation; tests must do it themselves).
as_served(doc) := object.union(doc, {"nodes": object.union(argument_nodes(doc), result_nodes(doc))})

argument_nodes(doc) := {"arguments": walked(doc.arguments)} if "arguments" in object.keys(doc)
else := {}

result_nodes(doc) := {"result": walked(doc.result.value)} if "value" in object.keys(object.get(doc, "result", {}))
else := {}

walked(x) := [[path, value] | walk(x, [path, value]); count(path) > 0]
