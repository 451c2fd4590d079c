//! `gatehouse bench`: a load generator for a running gateway's streamable HTTP endpoint.
//!
//! Each client is a real MCP client on its own keep-alive connection: `initialize`,
//! `notifications/initialized`, then `tools/call` requests carrying the `Mcp-Session-Id` the
//! server assigned. The clients share a fixed number of calls; the figures are calls per second
//! over the whole run and the latency percentiles of single calls, measured at the client.
//!
//! It drives any MCP server on streamable HTTP, not only a gateway (`scripts/bench` also loads
//! the native rmcp baseline of `benches/baseline_server.rs` with it). Given the server's process
//! id on this host (`--server-pid`), it also reports the server's CPU time per call: the
//! process's user + system time (`/proc/PID/stat`) over the measured calls, warm-up excluded.

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
    /// The server's process id on this host: also report its CPU time per measured call.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the figures as one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
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
    let server = args.server_pid.map(ServerCpu::of).transpose()?;
    let runtime = super::tokio_runtime()?;
    let report = runtime.block_on(drive(target, &args, server.as_ref()))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
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
    /// The server's CPU time over the measured calls, when its process id was given.
    server_cpu: Option<Duration>,
}

impl Report {
    /// The latency at quantile `p`, in milliseconds.
    fn at(&self, p: f64) -> f64 {
        let i = ((self.latencies.len().max(1) - 1) as f64 * p).round() as usize;
        self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn server_cpu_ms_per_call(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e3 / self.calls as f64)
    }

    fn to_json(&self) -> Value {
        json!({
            "client": "gatehouse bench",
            "clients": self.clients,
            "calls": self.calls,
            "failed": self.failures,
            "seconds": self.elapsed.as_secs_f64(),
            "calls_per_s": self.calls_per_second(),
            "p50_ms": self.at(0.50),
            "p95_ms": self.at(0.95),
            "p99_ms": self.at(0.99),
            "max_ms": self.at(1.0),
            "server_cpu_ms_per_call": self.server_cpu_ms_per_call(),
            "first_failure": self.first_failure,
        })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls by {} clients in {:.2} s: {:.0} calls/s; latency p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {} failed",
            self.calls,
            self.clients,
            self.elapsed.as_secs_f64(),
            self.calls_per_second(),
            self.at(0.50),
            self.at(0.95),
            self.at(0.99),
            self.at(1.0),
            self.failures,
        )?;
        if let Some(cpu) = self.server_cpu_ms_per_call() {
            write!(f, "; server CPU {cpu:.3} ms/call")?;
        }
        if let Some(failure) = &self.first_failure {
            write!(f, " (first: {failure})")?;
        }
        Ok(())
    }
}

async fn drive(
    target: Arc<Target>,
    args: &BenchArgs,
    server: Option<&ServerCpu>,
) -> anyhow::Result<Report> {
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
    let cpu_before = server.map(ServerCpu::used).transpose()?;
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
    let server_cpu = match (server, cpu_before) {
        (Some(server), Some(before)) => Some(server.used()?.saturating_sub(before)),
        _ => None,
    };
    latencies.sort();
    Ok(Report {
        clients: args.clients,
        calls: args.calls,
        failures: failures.len(),
        first_failure: failures.into_iter().next(),
        elapsed,
        latencies,
        server_cpu,
    })
}

/// The CPU time a server process on this host has used, from `/proc/PID/stat`.
struct ServerCpu {
    pid: u32,
    /// Clock ticks per second of the `stat` times (`getconf CLK_TCK`).
    ticks_per_second: u64,
}

impl ServerCpu {
    fn of(pid: u32) -> anyhow::Result<ServerCpu> {
        let output = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .context("running `getconf CLK_TCK` (for --server-pid)")?;
        let ticks_per_second = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|&ticks| ticks > 0)
            .ok_or_else(|| anyhow!("`getconf CLK_TCK` did not print a number of ticks"))?;
        let server = ServerCpu {
            pid,
            ticks_per_second,
        };
        server.used()?;
        Ok(server)
    }

    /// User + system time of the whole process (all its threads, living and ended).
    fn used(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {path}: is --server-pid a process on this host?"))?;
        let ticks =
            cpu_ticks(&stat).ok_or_else(|| anyhow!("{path} is not in the expected format"))?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / self.ticks_per_second as f64,
        ))
    }
}

/// `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/PID/stat` line. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so the fields
/// are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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
    fn reads_user_and_system_ticks_past_an_awkward_command_name() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 31 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(281));
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn measures_the_cpu_time_of_a_live_process() {
        let me = ServerCpu::of(std::process::id()).unwrap();
        let before = me.used().unwrap();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(
            me.used().unwrap() > before,
            "200 ms of spinning used no CPU"
        );
    }

    #[test]
    fn claims_exactly_the_remaining_calls() {
        let remaining = AtomicUsize::new(2);
        assert!(take_one(&remaining));
        assert!(take_one(&remaining));
        assert!(!take_one(&remaining));
    }
}
