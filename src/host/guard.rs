//! The question our WASI host code asks before it lets a running tool touch the world.
//!
//! The host implementations (outgoing HTTP, sockets, the filesystem) describe what the tool
//! asked for as a [`HostRequest`] and ask the call's [`HostGuard`]. The gateway's guard
//! decides with the policy (phases `http`, `socket`, `fs`) and records every verdict in the
//! audit log; the host code only enforces the answer. Keeping the question in these plain
//! types keeps the host independent of how it is answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Serialize;

use super::address::{Classification, classify};
use crate::policy::Injection;

/// One thing a tool asked the host to do, in the words of the policy input contract
/// (policies/README.md): serialized as `input.request`, `input.socket`, `input.fs` or
/// `input.config`.
#[derive(Debug, Clone, Serialize)]
pub enum HostRequest {
    Http(HttpRequestFacts),
    Socket(SocketAccess),
    Fs(FsAccess),
    Config(ConfigRead),
}

impl HostRequest {
    /// The policy phase that decides this request.
    pub fn phase(&self) -> &'static str {
        match self {
            HostRequest::Http(_) => "http",
            HostRequest::Socket(_) => "socket",
            HostRequest::Fs(_) => "fs",
            HostRequest::Config(_) => "config",
        }
    }

    /// The input field that carries the request (`request`, `socket`, `fs` or `config`).
    pub fn input_field(&self) -> &'static str {
        match self {
            HostRequest::Http(_) => "request",
            HostRequest::Socket(_) => "socket",
            HostRequest::Fs(_) => "fs",
            HostRequest::Config(_) => "config",
        }
    }

    /// One line for the operator's log: what was asked, without the parts that may carry
    /// secrets (an HTTP request's query and headers); the audit entry has the rest.
    pub fn summary(&self) -> String {
        match self {
            HostRequest::Http(facts) => format!(
                "{} {}://{}:{}{}",
                facts.method, facts.scheme, facts.host, facts.port, facts.path
            ),
            HostRequest::Socket(access) => format!(
                "{} {} {}:{}",
                access.protocol, access.operation, access.address, access.port
            ),
            HostRequest::Fs(access) => format!("{} {}", access.operation, access.path),
            HostRequest::Config(read) => match &read.key {
                Some(key) => format!("{} {key}", read.operation),
                None => read.operation.to_owned(),
            },
        }
    }

    /// What was asked, in two words for a session's history: the operation (HTTP method,
    /// `read` or `write`, socket operation, settings operation) and its object (host, path,
    /// `address:port`, key).
    pub fn subject(&self) -> (String, Option<String>) {
        match self {
            HostRequest::Http(facts) => (facts.method.clone(), Some(facts.host.clone())),
            HostRequest::Socket(access) => (
                access.operation.to_owned(),
                Some(SocketAddr::new(access.address, access.port).to_string()),
            ),
            HostRequest::Fs(access) => (
                match access.access {
                    Access::Read => "read",
                    Access::Write => "write",
                }
                .to_owned(),
                Some(access.path.clone()),
            ),
            HostRequest::Config(read) => (read.operation.to_owned(), read.key.clone()),
        }
    }

    /// The request as the JSON document the policy reads.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            HostRequest::Http(facts) => serde_json::to_value(facts),
            HostRequest::Socket(access) => serde_json::to_value(access),
            HostRequest::Fs(access) => serde_json::to_value(access),
            HostRequest::Config(read) => serde_json::to_value(read),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

/// An outgoing HTTP request as the policy sees it (`input.request`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRequestFacts {
    pub method: String,
    pub scheme: String,
    /// Lower-cased host name or IP literal as the tool wrote it (IPv6 without brackets).
    pub host: String,
    /// The explicit port, or the scheme's default.
    pub port: u16,
    pub path: String,
    pub query: String,
    /// Header names (lower case) and values; values of credential-carrying headers are
    /// replaced by `***` so that no policy, log or audit entry ever holds them.
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Every address the gateway resolved the host to, IPv4-mapped IPv6 shown as IPv4; the
    /// request can only ever connect to these. Kept for policies written before `addresses`.
    pub resolved_ips: Vec<IpAddr>,
    /// The same addresses, each as resolved and with its class: what the bundled policy
    /// decides on.
    pub addresses: Vec<ResolvedAddress>,
    /// The body size, when the tool declared it (`content-length`).
    pub body_size: Option<u64>,
}

impl HttpRequestFacts {
    /// Records the addresses the request may connect to, in both fields, from one list.
    pub fn set_resolved(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        self.addresses = ips
            .into_iter()
            .map(|ip| ResolvedAddress {
                ip,
                classification: classify(ip),
            })
            .collect();
        self.resolved_ips = self.addresses.iter().map(|a| a.ip.to_canonical()).collect();
    }
}

/// One resolved address of an HTTP request: `{"ip", "class", "embedded_ipv4", "embedding"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedAddress {
    /// The address exactly as the gateway would connect to it.
    pub ip: IpAddr,
    #[serde(flatten)]
    pub classification: Classification,
}

/// A raw socket operation (`input.socket`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SocketAccess {
    /// `connect`, `bind`, `listen`, `accept`, `send` or `receive`.
    pub operation: &'static str,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// IPv4-mapped IPv6 shown as IPv4.
    pub address: IpAddr,
    pub port: u16,
    /// The class of `address` and the IPv4 address it embeds, if any.
    #[serde(flatten)]
    pub classification: Classification,
}

impl SocketAccess {
    pub fn new(operation: &'static str, protocol: &'static str, address: SocketAddr) -> Self {
        let ip = address.ip().to_canonical();
        SocketAccess {
            operation,
            protocol,
            address: ip,
            port: address.port(),
            classification: classify(ip),
        }
    }
}

/// Read or write: anything that creates, changes or removes is a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// A filesystem operation that names a path (`input.fs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FsAccess {
    /// The WASI operation, e.g. `open-at`, `stat-at`, `rename-at`, `read-directory`.
    pub operation: &'static str,
    /// The absolute guest path the operation touches: `.`, `..` and every symbolic link
    /// resolved as the kernel resolves them.
    pub path: String,
    /// The path as the tool wrote it (`.` and `..` resolved), when links made it differ from
    /// `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// The guest path of the mount `path` lies in.
    pub mount: String,
    pub access: Access,
    /// The second path of `rename-at` and `link-at` (the source), or where the link
    /// `symlink-at` creates will point, resolved from the link's real directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The open flags of `open-at` (`create`, `directory`, `exclusive`, `truncate`, `read`,
    /// `write`, `mutate-directory`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
}

/// A read of the component's settings through `wasi:config/store` (`input.config`). Never
/// the values: only which key, and which keys the component has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigRead {
    /// `get` or `get-all`.
    pub operation: &'static str,
    /// The key `get` asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether the component has that key (for `get`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// Every key configured for the component: what it may read at most.
    pub keys: Vec<String>,
}

/// The answer to a [`HostRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVerdict {
    pub allowed: bool,
    /// Why, in the policy's words (for a denial: what the tool and the log are told).
    pub reasons: Vec<String>,
    /// Headers to set on an allowed HTTP request, from brokered secrets (empty otherwise).
    pub inject: Injection,
}

impl HostVerdict {
    pub fn allow() -> Self {
        HostVerdict {
            allowed: true,
            reasons: Vec::new(),
            inject: Injection::default(),
        }
    }

    pub fn deny(reason: impl Into<String>) -> Self {
        HostVerdict {
            allowed: false,
            reasons: vec![reason.into()],
            inject: Injection::default(),
        }
    }
}

/// Decides what one call's tool may do while it runs. Deciding is synchronous (a policy
/// evaluation and queueing an audit record), so it can serve every host hook, including
/// wasmtime-wasi's socket address check. Implementations must fail closed: an error while
/// deciding or recording is a denial.
pub trait HostGuard: Send + Sync {
    /// Decides `request` with the policy and records the verdict.
    fn decide(&self, request: HostRequest) -> HostVerdict;

    /// Records a request the host refused by itself, whatever the policy says (a path out of
    /// its mount, a limit reached); returns the denial.
    fn refuse(&self, request: HostRequest, reason: String) -> HostVerdict;

    /// Records what the tool logged through `wasi:logging` (already bounded by the host): it
    /// is no decision, but part of the call's story. Must not block on the disk.
    fn log(&self, record: ToolLog);
}

/// A `wasi:logging` level (the WIT enum's cases, lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }
}

/// One line a tool logged: `{"level", "context", "message"}` in its audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolLogLine {
    pub level: LogLevel,
    /// The tool's own grouping (a logger or module name); may be empty.
    pub context: String,
    pub message: String,
}

/// What the host hands the guard about a tool's logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolLog {
    /// A line within the call's bounds.
    Line(ToolLogLine),
    /// Once, at the end of a call that logged past its bounds: how much was dropped.
    Dropped { lines: u64, bytes: u64 },
}

/// The guard of one call, shared by the call's store and its socket check.
pub type SharedGuard = Arc<dyn HostGuard>;

/// The time a call's guard spent waiting for a person to approve a request: the call's
/// wall-clock limit does not run while a person reads (the runtime adds it to the deadline).
/// A wait still going on counts too, so a deadline checked mid-wait moves with it; waits that
/// overlap (two requests asked at once) count once.
#[derive(Debug, Clone, Default)]
pub struct WaitClock(Arc<std::sync::Mutex<Waits>>);

#[derive(Debug, Default)]
struct Waits {
    done: std::time::Duration,
    active: usize,
    since: Option<std::time::Instant>,
}

/// A wait in progress; it ends when dropped.
pub struct Paused(WaitClock);

impl WaitClock {
    fn waits(&self) -> std::sync::MutexGuard<'_, Waits> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the clock until the returned guard is dropped.
    pub fn pause(&self) -> Paused {
        let mut waits = self.waits();
        if waits.active == 0 {
            waits.since = Some(std::time::Instant::now());
        }
        waits.active += 1;
        Paused(self.clone())
    }

    /// Every wait so far, the ones still going on included.
    pub fn total(&self) -> std::time::Duration {
        let waits = self.waits();
        waits.done
            + waits
                .since
                .map_or_else(Default::default, |since| since.elapsed())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let mut waits = self.0.waits();
        waits.active = waits.active.saturating_sub(1);
        if waits.active == 0
            && let Some(since) = waits.since.take()
        {
            waits.done += since.elapsed();
        }
    }
}
