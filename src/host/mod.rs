//! Our side of the WASI imports: the state one call's `Store` carries, and the doors through
//! which a tool may touch the world.
//!
//! Components get clocks, random, stdio captured into our log, no arguments, only the
//! environment variables granted to them, only the directories the operator mounted (through
//! our guarded `wasi:filesystem`, [`fs`]), outgoing HTTP through [`http::OutgoingHttpGuard`],
//! and raw sockets only where the policy's `socket` phase allows an address. Name lookup over
//! `wasi:sockets` stays closed: HTTP resolves names on the host, where they are checked.
//! Beyond WASI 0.2, tools may log through `wasi:logging` ([`logging`]) and read their settings
//! through `wasi:config/store` ([`config`], each read decided). The whole contract is
//! `wit/` (world `gatehouse:tool/tool`).

pub mod address;
pub mod bindings;
pub mod config;
pub mod fs;
pub mod guard;
pub mod http;
pub mod limits;
pub mod logging;

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use config::{ComponentSettings, ConfigStore};
use fs::{DescriptorPaths, GuardedFilesystem, MountConfig};
use guard::{HostGuard, HostRequest, SharedGuard, SocketAccess};
use http::{HttpSettings, OutgoingHttpGuard};
use limits::CallLimiter;
use logging::ToolLogger;

use crate::secrets::Secrets;

/// Bytes of stdout and of stderr kept per call; beyond that the guest's stream is closed.
const CAPTURED_OUTPUT_BYTES: usize = 1 << 20;

/// How components reach the host, shared by all calls.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    pub mounts: Vec<MountConfig>,
    pub http: Arc<HttpSettings>,
}

/// What one call brings to its store besides the shared configuration.
pub struct CallHost {
    /// Decides and records what the tool does while it runs.
    pub guard: SharedGuard,
    /// Outgoing HTTP requests the call may make.
    pub max_requests: u64,
    /// Environment variables granted to this call (by configuration and policy).
    pub env: Vec<(String, String)>,
    /// The component's settings, read through `wasi:config/store`.
    pub config: Arc<ComponentSettings>,
    /// Time the guard spent waiting for a person, which the call's deadline does not count.
    pub waited: guard::WaitClock,
}

/// The data of one call's `Store`: WASI and wasi:http state plus the call's limits.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    http_guard: OutgoingHttpGuard,
    guard: SharedGuard,
    descriptor_paths: DescriptorPaths,
    pub(crate) limiter: CallLimiter,
    /// The tool's `wasi:logging` lines, bounded per call.
    pub(crate) log: ToolLogger,
    /// The component's settings (`wasi:config/store`), each read decided.
    pub(crate) config: ConfigStore,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// To mask brokered values in what the guest wrote, before the log or an error quotes it.
    secrets: Arc<Secrets>,
}

impl CallState {
    /// Builds a fresh state for one call; nothing is shared with any other call.
    pub fn new(
        host: &HostConfig,
        limiter: CallLimiter,
        call: CallHost,
    ) -> std::io::Result<CallState> {
        let stdout = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let mut builder = WasiCtxBuilder::new();
        let socket_guard = call.guard.clone();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&call.env)
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(false)
            .socket_addr_check(move |address, used| {
                let allowed = check_socket(socket_guard.as_ref(), address, used);
                Box::pin(async move { allowed })
            });
        for mount in &host.mounts {
            let perms = if mount.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&mount.host, &mount.guest, perms)
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "cannot mount {} at {}: {e}",
                        mount.host.display(),
                        mount.guest
                    ))
                })?;
        }
        Ok(CallState {
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            http_guard: OutgoingHttpGuard::new(
                call.guard.clone(),
                host.http.clone(),
                call.max_requests,
            ),
            log: ToolLogger::new(call.guard.clone(), host.http.secrets.clone()),
            config: ConfigStore::new(call.config, call.guard.clone()),
            guard: call.guard,
            descriptor_paths: DescriptorPaths::default(),
            limiter,
            stdout,
            stderr,
            secrets: host.http.secrets.clone(),
        })
    }

    /// What the guest wrote to stdout and stderr during the call (lossy UTF-8), brokered
    /// secrets masked.
    pub fn captured_output(&self) -> (String, String) {
        let text = |pipe: &MemoryOutputPipe| {
            let mut bytes = pipe.contents().to_vec();
            self.secrets.mask(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        };
        (text(&self.stdout), text(&self.stderr))
    }

    /// The guarded `wasi:filesystem` view the linker hands to filesystem imports.
    pub fn guarded_filesystem(&mut self) -> GuardedFilesystem<'_> {
        GuardedFilesystem {
            inner: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            paths: &mut self.descriptor_paths,
            guard: self.guard.as_ref(),
        }
    }
}

/// Decides one raw socket use. The implicit bind of an unspecified address to an ephemeral
/// port that every `connect` starts with reaches nothing and is let through unrecorded; every
/// other bind, listen, accept, connect and datagram destination is decided by the policy.
fn check_socket(guard: &dyn HostGuard, address: SocketAddr, used: SocketAddrUse) -> bool {
    let (operation, protocol) = match used {
        SocketAddrUse::TcpBind => ("bind", "tcp"),
        SocketAddrUse::TcpListen => ("listen", "tcp"),
        SocketAddrUse::TcpAccept => ("accept", "tcp"),
        SocketAddrUse::TcpConnect => ("connect", "tcp"),
        SocketAddrUse::UdpBind => ("bind", "udp"),
        SocketAddrUse::UdpSend => ("send", "udp"),
        SocketAddrUse::UdpReceive => ("receive", "udp"),
    };
    if operation == "bind" && address.ip().is_unspecified() && address.port() == 0 {
        return true;
    }
    guard
        .decide(HostRequest::Socket(SocketAccess::new(
            operation, protocol, address,
        )))
        .allowed
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_guard,
        }
    }
}
