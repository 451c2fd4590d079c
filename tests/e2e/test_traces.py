"""OpenTelemetry traces as a collector sees them: a real OTLP/HTTP receiver started by the test
decodes what the gateway exports with the `opentelemetry-proto` package. A call made with the
official MCP Python SDK, whose HTTP request carries a W3C `traceparent`, arrives as a span in
the agent's trace, a child of the agent's span, with one child per step (decisions, audit
commits, the run, each host decision) and no argument value anywhere; over stdio the call's
`_meta.traceparent` does the same. A collector that is down
or never answers fails no call and delays none: its spans are dropped and counted."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from conftest import audit_rows, client_for, free_port, http_gateway, scrape, serve_args, value

pytestmark = pytest.mark.anyio

# Batches leave every 100 ms instead of every 5 s, so the test need not wait.
FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


class _Receiver(BaseHTTPRequestHandler):
    """OTLP/HTTP: POST /v1/traces with an `ExportTraceServiceRequest` in protobuf."""

    def do_POST(self):  # noqa: N802 (the stdlib's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
        if ok:
            self.server.received.append(ExportTraceServiceRequest.FromString(body))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_args):
        pass


class Collector:
    """A real OTLP/HTTP trace receiver on 127.0.0.1."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        self.server.received = []
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        """Every span received: (resource attributes, span)."""
        return [
            (attributes(resource_spans.resource.attributes), span)
            for request in list(self.server.received)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    receiver = Collector()
    try:
        yield receiver
    finally:
        receiver.stop()


def attributes(key_values) -> dict:
    """OTLP attributes as a plain dict (strings, ints, bools)."""
    out = {}
    for kv in key_values:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


def telemetry_config(tmp_path, endpoint: str, extra: str = "") -> str:
    config = tmp_path / "gatehouse.toml"
    config.write_text(f'[telemetry]\notlp_endpoint = "{endpoint}"\n{extra}')
    return str(config)


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


async def call_in_trace(url: str, traceparent: str, calls):
    """Makes `calls` ([(tool, arguments)]) over one MCP session whose every HTTP request carries
    `traceparent`, as an instrumented agent's HTTP client sends it; their results."""
    async with httpx2.AsyncClient(headers={"traceparent": traceparent}, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return [await session.call_tool(tool, arguments) for tool, arguments in calls]


# Every tool but `echo_fetch`; outgoing HTTP to 127.0.0.1 only (so `localhost` is denied while
# the tool runs). No `result` phase.
POLICIES = {
    "call.rego": 'package gatehouse.call\n\nallow := true\n\ndeny contains "not for anyone" if input.tool.name == "echo_fetch"\n',
    "list.rego": "package gatehouse.list\n\nallow := true\n",
    "http.rego": 'package gatehouse.http\n\ndefault allow := false\n\nallow if input.request.host == "127.0.0.1"\n',
}


def gateway_args(components, cache_dir, tmp_path, *extra):
    """`serve` arguments for the `fetch` and `echo` components under `POLICIES`, and the audit
    log's path."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, text in POLICIES.items():
        (policies / name).write_text(text)
    audit = tmp_path / "audit" / "audit.db"
    audit.parent.mkdir()
    args = serve_args(components, cache_dir, *extra, names=("fetch", "echo"), policies=policies, audit=audit)
    return args, audit


async def test_a_calls_spans_join_the_agents_trace(gatehouse, components, cache_dir, web, collector, tmp_path):
    trace_id, agent_span = secrets.token_hex(16), secrets.token_hex(8)
    # An argument value that must reach no span: a token in the URL's query, a key.
    secret = f"tok-{secrets.token_hex(8)}"
    port = web.rsplit(":", 1)[1]
    config = telemetry_config(tmp_path, collector.endpoint)
    args, audit = gateway_args(components, cache_dir, tmp_path, "--config", config)
    with http_gateway(gatehouse, args, env=FAST_BATCHES) as gateway:
        assert any(f"traces: OTLP to {collector.endpoint}/v1/traces" in line for line in gateway.stderr_lines)
        fetched, refused, denied = await call_in_trace(gateway.url, f"00-{trace_id}-{agent_span}-01", [
            ("fetch_fetch", {"url": f"{web}/hello?token={secret}"}),
            # Allowed as a call; its request to `localhost` is denied while the tool runs, and
            # the tool reports that as its own error.
            ("fetch_fetch", {"url": f"http://localhost:{port}/hello?token={secret}"}),
            ("echo_fetch", {"key": secret}),
        ])
        assert not fetched.is_error and refused.is_error
        assert denied.is_error and "denied by policy: not for anyone" in denied.content[0].text

        def all_calls():
            calls = [span for _, span in collector.spans() if span.name.startswith("tools/call ")]
            return calls if len(calls) == 3 else None

        calls = wait_for(all_calls)
        samples, _ = scrape(gateway.url.removesuffix("/mcp") + "/metrics")

    received = collector.spans()
    spans = [span for _, span in received]
    assert all(resource.get("service.name") == "gatehouse" for resource, _ in received)
    # The metric counts every span the collector took, and nothing was dropped.
    assert value(samples, "gatehouse_trace_spans_exported_total") == len(spans)
    assert not any(name == "gatehouse_trace_spans_dropped_total" and v for (name, _), v in samples.items())

    call_ids = {row[0] for row in audit_rows(audit, "SELECT call_id FROM entries WHERE phase = 'call'")}
    story = {}
    for call in calls:
        # The call span is the agent's span's child, in the agent's trace.
        assert call.trace_id.hex() == trace_id
        assert call.parent_span_id.hex() == agent_span
        assert call.kind == Span.SpanKind.SPAN_KIND_SERVER
        attrs = attributes(call.attributes)
        assert call.name == f"tools/call {attrs['gen_ai.tool.name']}"
        assert attrs["mcp.method.name"] == "tools/call"
        assert attrs["gatehouse.principal"] == "anonymous"
        assert attrs["gatehouse.call_id"] in call_ids
        # Each step is a child of the call span, in the same trace and inside its time.
        children = [span for span in spans if span.parent_span_id == call.span_id]
        for child in children:
            assert child.trace_id == call.trace_id
            assert call.start_time_unix_nano <= child.start_time_unix_nano
            assert child.end_time_unix_nano <= call.end_time_unix_nano
        steps = {child.name: attributes(child.attributes) for child in children}
        assert len(steps) == len(children), "one span per step"
        story[attrs["gen_ai.tool.name"], attrs["gatehouse.verdict"], attrs["gatehouse.outcome"]] = steps

    assert sorted(story) == [
        ("echo_fetch", "deny", "denied"),
        ("fetch_fetch", "allow", "ok"),
        ("fetch_fetch", "allow", "tool_error"),
    ]
    # The denied call never ran: its decision and the two commits only.
    denied_steps = story["echo_fetch", "deny", "denied"]
    assert sorted(denied_steps) == ["audit outcome", "audit verdict", "policy call"]
    assert denied_steps["policy call"]["gatehouse.verdict"] == "deny"
    for outcome, host, verdict in [("ok", "127.0.0.1", "allow"), ("tool_error", "localhost", "deny")]:
        steps = story["fetch_fetch", "allow", outcome]
        assert sorted(steps) == ["audit outcome", "audit verdict", "policy call", "policy http", "run"]
        assert steps["policy call"]["gatehouse.verdict"] == "allow"
        assert steps["run"]["gatehouse.component"] == "fetch"
        assert steps["audit verdict"]["gatehouse.audit.entries"] == 1
        # The outcome commits with the request's record.
        assert steps["audit outcome"]["gatehouse.audit.entries"] == 2
        http = steps["policy http"]
        assert (http["server.address"], http["gatehouse.verdict"]) == (host, verdict)
        assert http["http.request.method"] == "GET"
        assert http["url.scheme"] == "http"
        assert http["server.port"] == int(port)
        assert http["gatehouse.phase"] == "http"
    # Exactly these spans, and no argument value (nor the path it named) in any of them.
    assert len(spans) == 3 + 3 + 5 + 5
    exported = " ".join(str(attributes(span.attributes)) + span.name for span in spans)
    assert secret not in exported and "/hello" not in exported


async def test_a_call_without_a_traceparent_starts_a_trace_of_its_own(gatehouse, components, cache_dir, collector, tmp_path):
    config = telemetry_config(tmp_path, collector.endpoint)
    args, _ = gateway_args(components, cache_dir, tmp_path, "--config", config)
    with http_gateway(gatehouse, args, env=FAST_BATCHES) as gateway:
        # Not a valid traceparent (all-zero trace id): ignored, as the W3C spec asks.
        (echoed,) = await call_in_trace(gateway.url, f"00-{'0' * 32}-{secrets.token_hex(8)}-01", [("echo_echo", {"message": "hi"})])
        assert not echoed.is_error
        (call,) = wait_for(lambda: [span for _, span in collector.spans() if span.name == "tools/call echo_echo"])
    assert call.trace_id != bytes(16) and call.parent_span_id == b""
    children = [span for _, span in collector.spans() if span.parent_span_id == call.span_id]
    assert sorted(child.name for child in children) == ["audit outcome", "audit verdict", "policy call", "run"]


async def test_a_call_over_stdio_joins_the_trace_its_meta_names(gatehouse, components, cache_dir, collector, tmp_path):
    trace_id, agent_span = secrets.token_hex(16), secrets.token_hex(8)
    args, _ = gateway_args(components, cache_dir, tmp_path, "--config", telemetry_config(tmp_path, collector.endpoint))
    # MCP's own carrier (SEP-414): `params._meta.traceparent`, the only one stdio has.
    async with client_for("stdio", gatehouse, args) as client:
        echoed = await client.call_tool("echo_echo", {"message": "hi"}, meta={"traceparent": f"00-{trace_id}-{agent_span}-01"})
        assert not echoed.is_error
    # The gateway sends what is queued as it stops.
    (call,) = wait_for(lambda: [span for _, span in collector.spans() if span.name == "tools/call echo_echo"])
    assert (call.trace_id.hex(), call.parent_span_id.hex()) == (trace_id, agent_span)


def echo_calls(n: int):
    return [("echo_echo", {"message": f"call {i}"}) for i in range(n)]


async def test_a_collector_that_is_down_fails_and_delays_no_call(gatehouse, components, cache_dir, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    args, _ = gateway_args(components, cache_dir, tmp_path, "--config", telemetry_config(tmp_path, down))
    with http_gateway(gatehouse, args, env=FAST_BATCHES) as gateway:
        results = await call_in_trace(gateway.url, f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01", echo_calls(10))
        assert not any(result.is_error for result in results)
        metrics = gateway.url.removesuffix("/mcp") + "/metrics"

        def dropped():
            samples, _ = scrape(metrics)
            return value(samples, "gatehouse_trace_spans_dropped_total", reason="export_failed")

        # Every span of the ten calls (call, decision, two commits, run) is counted as dropped.
        wait_for(lambda: dropped() == 10 * 5)
        samples, _ = scrape(metrics)
        assert value(samples, "gatehouse_calls_total", tool="echo_echo", verdict="allow", outcome="ok") == 10
        assert not value(samples, "gatehouse_trace_spans_exported_total")
    warnings = [line for line in gateway.stderr_lines if "cannot export traces" in line]
    assert len(warnings) == 1, "a down collector is logged once, not per batch"
    assert down in warnings[0]


async def test_a_collector_that_never_answers_delays_no_call(gatehouse, components, cache_dir, tmp_path):
    # Accepts connections (the kernel completes them) and never reads or answers: each export
    # waits for the exporter's timeout, set far beyond what the calls may take.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        endpoint = f"http://127.0.0.1:{hole.getsockname()[1]}"
        config = telemetry_config(tmp_path, endpoint, "max_queued_spans = 8\n")
        args, _ = gateway_args(components, cache_dir, tmp_path, "--config", config)
        env = {**FAST_BATCHES, "OTEL_EXPORTER_OTLP_TIMEOUT": "120000"}
        with http_gateway(gatehouse, args, env=env) as gateway:
            started = time.monotonic()
            results = await call_in_trace(gateway.url, f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01", echo_calls(20))
            took = time.monotonic() - started
            assert not any(result.is_error for result in results)
            # Had any call waited for an export, it would have waited 120 s.
            assert took < 60, f"20 calls took {took:.1f} s"
            samples, _ = scrape(gateway.url.removesuffix("/mcp") + "/metrics")
    # At most 8 spans wait (or hang in the export); the other 92 of the 100 were dropped.
    assert value(samples, "gatehouse_trace_spans_dropped_total", reason="queue_full") == 20 * 5 - 8
