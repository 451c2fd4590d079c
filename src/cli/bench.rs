//! `gatehouse bench`: a load generator for a running gateway's streamable HTTP endpoint.
//!
//! Each client is a real MCP client on its own keep-alive connection: `initialize`,
//! `notifications/initialized`, then `tools/call` requests carrying the `Mcp-Session-Id` the
//! server assigned. The clients share a fixed number of calls; the figures are calls per second
//! over the whole run and the latency percentiles of single calls, measured at the client.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The protocol version the clients ask for: one with sessions, so every call carries the
/// `Mcp-Session-Id` header as most deployed clients do today.
const PROTOCOL_VERSION: &str = "2025-06-18";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The MCP endpoint of a running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8787/mcp")]
    pub url: String,
    /// Concurrent clients, each with its own connection and MCP session.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Tool calls measured, shared by all clients.
    #[arg(long, default_value_t = 20_000)]
    pub calls: usize,
    /// Unmeasured calls each client makes first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// The tool to call.
    #[arg(long, default_value = "echo_echo")]
    pub tool: String,
    /// Its arguments, a JSON object.
    #[arg(long, default_value = r#"{"message":"hello"}"#)]
    pub arguments: String,
    /// Send `Authorization: Bearer KEY`.
    #[arg(long, env = "GATEHOUSE_BENCH_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// Where to connect and what every request carries.
struct Target {
    /// `host:port` to connect to, also the `Host` header.
    authority: String,
    path: String,
    api_key: Option<String>,
    tool: String,
    arguments: Value,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.clients == 0 || args.calls == 0 {
        bail!("--clients and --calls must be at least 1");
    }
    let uri: http::Uri = args
        .url
        .parse()
        .with_context(|| format!("--url {:?} is not a URL", args.url))?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be an http:// URL (the load generator speaks plain HTTP/1.1)");
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("--url has no host"))?;
    let arguments: Value =
        serde_json::from_str(&args.arguments).context("--arguments is not JSON")?;
    if !arguments.is_object() {
        bail!("--arguments must be a JSON object");
    }
    let target = Arc::new(Target {
        authority: match authority.port() {
            Some(_) => authority.to_string(),
            None => format!("{}:80", authority.host()),
        },
        path: uri.path().to_owned(),
        api_key: args.api_key.clone(),
        tool: args.tool.clone(),
        arguments,
    });
    let runtime = super::tokio_runtime()?;
    let report = runtime.block_on(drive(target, &args))?;
    println!("{report}");
    Ok(if report.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What a run measured.
struct Report {
    clients: usize,
    calls: usize,
    failures: usize,
    first_failure: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |p: f64| {
            let i = ((self.latencies.len().max(1) - 1) as f64 * p).round() as usize;
            self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        write!(
            f,
            "{} calls by {} clients in {:.2} s: {:.0} calls/s; latency p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {} failed",
            self.calls,
            self.clients,
            self.elapsed.as_secs_f64(),
            self.calls as f64 / self.elapsed.as_secs_f64(),
            at(0.50),
            at(0.95),
            at(0.99),
            at(1.0),
            self.failures,
        )?;
        if let Some(failure) = &self.first_failure {
            write!(f, " (first: {failure})")?;
        }
        Ok(())
    }
}

async fn drive(target: Arc<Target>, args: &BenchArgs) -> anyhow::Result<Report> {
    // Every client opens its session and warms up before the clock starts.
    let mut clients = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        let mut client = Client::connect(target.clone())
            .await
            .with_context(|| format!("client {index}: connecting to {}", target.authority))?;
        client
            .initialize()
            .await
            .with_context(|| format!("client {index}: initializing the MCP session"))?;
        for _ in 0..args.warmup {
            client
                .call_tool()
                .await
                .with_context(|| format!("client {index}: warm-up call"))?;
        }
        clients.push(client);
    }
    let remaining = Arc::new(AtomicUsize::new(args.calls));
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let remaining = remaining.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = Vec::new();
                while take_one(&remaining) {
                    let t0 = Instant::now();
                    match client.call_tool().await {
                        Ok(()) => latencies.push(t0.elapsed()),
                        Err(error) => failures.push(format!("{error:#}")),
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.calls);
    let mut failures = Vec::new();
    for task in tasks {
        let (l, f) = task.await.context("a client task panicked")?;
        latencies.extend(l);
        failures.extend(f);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Ok(Report {
        clients: args.clients,
        calls: args.calls,
        failures: failures.len(),
        first_failure: failures.into_iter().next(),
        elapsed,
        latencies,
    })
}

/// Claims one of the remaining calls; false once none are left.
fn take_one(remaining: &AtomicUsize) -> bool {
    remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// One MCP client on one HTTP/1.1 connection.
struct Client {
    target: Arc<Target>,
    sender: SendRequest<Full<Bytes>>,
    session: Option<http::HeaderValue>,
    next_id: u64,
}

impl Client {
    async fn connect(target: Arc<Target>) -> anyhow::Result<Client> {
        let stream = tokio::net::TcpStream::connect(&target.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "bench connection closed");
            }
        });
        Ok(Client {
            target,
            sender,
            session: None,
            next_id: 1,
        })
    }

    async fn initialize(&mut self) -> anyhow::Result<()> {
        let reply = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "gatehouse-bench", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        if reply.get("protocolVersion").is_none() {
            bail!("initialize answered without a protocolVersion: {reply}");
        }
        self.notify("notifications/initialized").await
    }

    async fn call_tool(&mut self) -> anyhow::Result<()> {
        let result = self
            .request(
                "tools/call",
                json!({"name": self.target.tool, "arguments": self.target.arguments}),
            )
            .await?;
        if result.get("isError") == Some(&Value::Bool(true)) {
            bail!("the tool call failed: {result}");
        }
        Ok(())
    }

    /// Sends a request and returns its `result` (an error reply is an error).
    async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, headers, bytes) = self.post(&body).await?;
        if !status.is_success() {
            bail!(
                "{method}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        if let Some(session) = headers.get("mcp-session-id") {
            self.session = Some(session.clone());
        }
        let reply = find_reply(&headers, &bytes, id)
            .ok_or_else(|| anyhow!("{method}: no reply with id {id} in the response"))?;
        match (reply.get("result"), reply.get("error")) {
            (Some(result), None) => Ok(result.clone()),
            (_, Some(error)) => bail!("{method}: error reply {error}"),
            _ => bail!("{method}: malformed reply {reply}"),
        }
    }

    async fn notify(&mut self, method: &str) -> anyhow::Result<()> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let (status, _, bytes) = self.post(&body).await?;
        if !status.is_success() {
            bail!(
                "{method}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    }

    async fn post(
        &mut self,
        body: &Value,
    ) -> anyhow::Result<(http::StatusCode, http::HeaderMap, Bytes)> {
        let mut request = http::Request::post(self.target.path.as_str())
            .header(http::header::HOST, &self.target.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION);
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(key) = &self.target.api_key {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        self.sender.ready().await.context("connection lost")?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// The JSON-RPC message with `id` in a response: a JSON body, or the `data:` lines of an SSE
/// stream (which may also carry priming events and notifications).
fn find_reply(headers: &http::HeaderMap, body: &[u8], id: u64) -> Option<Value> {
    let is_sse = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let matches = |message: &Value| message.get("id") == Some(&json!(id));
    if !is_sse {
        return serde_json::from_slice(body).ok().filter(matches);
    }
    std::str::from_utf8(body)
        .ok()?
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_reply_among_sse_events() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        let body = b"id: 0\nretry: 3000\ndata:\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"ok\":true}}\n\n";
        let reply = find_reply(&headers, body, 7).unwrap();
        assert_eq!(reply["result"]["ok"], json!(true));
        assert!(find_reply(&headers, body, 8).is_none());
    }

    #[test]
    fn finds_a_json_reply() {
        let body = br#"{"jsonrpc":"2.0","id":3,"result":{}}"#;
        assert!(find_reply(&http::HeaderMap::new(), body, 3).is_some());
        assert!(find_reply(&http::HeaderMap::new(), body, 4).is_none());
    }

    #[test]
    fn claims_exactly_the_remaining_calls() {
        let remaining = AtomicUsize::new(2);
        assert!(take_one(&remaining));
        assert!(take_one(&remaining));
        assert!(!take_one(&remaining));
    }
}
