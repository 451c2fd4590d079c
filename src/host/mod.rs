//! Our side of the WASI imports: the state one call's `Store` carries, and the doors through
//! which a tool may touch the world.
//!
//! Components get clocks, random, stdio captured into our log, no inherited environment, no
//! arguments, only the directories the operator mounted, and outgoing HTTP through
//! [`http::OutgoingHttpGuard`]. Raw sockets and name lookup stay closed.

pub mod http;

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::MountConfig;
use crate::runtime::limits::CallLimiter;
use http::{HostAllowlist, OutgoingHttpGuard};

/// Bytes of stdout and of stderr kept per call; beyond that the guest's stream is closed.
const CAPTURED_OUTPUT_BYTES: usize = 1 << 20;

/// How components reach the host, shared by all calls.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    pub mounts: Vec<MountConfig>,
    pub http_allow: Arc<HostAllowlist>,
}

/// The data of one call's `Store`: WASI and wasi:http state plus the call's limits.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    http_guard: OutgoingHttpGuard,
    pub(crate) limiter: CallLimiter,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl CallState {
    /// Builds a fresh state for one call; nothing is shared with any other call.
    pub fn new(host: &HostConfig, limiter: CallLimiter) -> std::io::Result<CallState> {
        let stdout = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
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
            http_guard: OutgoingHttpGuard::new(host.http_allow.clone()),
            limiter,
            stdout,
            stderr,
        })
    }

    /// What the guest wrote to stdout and stderr during the call (lossy UTF-8).
    pub fn captured_output(&self) -> (String, String) {
        (
            String::from_utf8_lossy(&self.stdout.contents()).into_owned(),
            String::from_utf8_lossy(&self.stderr.contents()).into_owned(),
        )
    }
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
