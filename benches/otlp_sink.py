"""An OTLP/HTTP trace receiver for `scripts/bench`: takes every `POST /v1/traces`, decodes it
with the `opentelemetry-proto` package (so a malformed export would show), counts the spans and
answers 200. On SIGTERM it prints how many spans it took to stderr and exits.

    .venv/bin/python benches/otlp_sink.py --port 4318
"""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

REPLY = ExportTraceServiceResponse().SerializeToString()


class Sink(BaseHTTPRequestHandler):
    spans = 0

    def do_POST(self):  # noqa: N802 (the stdlib's naming)
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        Sink.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *_args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)

    def stop(*_):
        print(f"otlp sink: {Sink.spans} spans received", file=sys.stderr)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
