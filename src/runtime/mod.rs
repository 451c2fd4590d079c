//! The wasmtime side: one `Engine` (component model, epoch interruption, pooling allocator),
//! one `Linker` with our host implementations, the compiled-component cache, and a fresh
//! `Store` per call (see [`call`]) so that no state leaks from one call to the next.

pub mod cache;
pub mod call;
pub mod component;
pub mod limits;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::host::fs::GuardedFs;
use crate::host::{CallState, HostConfig};
use cache::CompileCache;
pub use call::CallError;
pub use component::{ComponentSpec, ExportedFunction, LoadError, LoadedComponent};
pub use limits::CallLimits;

/// How often the epoch advances: the granularity of call timeouts and of cooperative yields
/// from a busy guest back to the async executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Wasm stack a guest may use before it traps with a stack overflow.
const MAX_WASM_STACK_BYTES: usize = 1 << 20;

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub cache_dir: Option<PathBuf>,
    pub host: HostConfig,
    /// The most memory any call may be granted; sizes the pooling allocator's slots.
    pub max_memory_bytes: u64,
    /// How many calls may run at once; sizes the pooling allocator.
    pub max_concurrent_calls: u32,
    /// Whether calls are metered with fuel (then every call gets a fuel budget).
    pub fuel: bool,
}

/// The engine, linker and cache shared by every component and call.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompileCache,
    host: HostConfig,
    _epoch: EpochTicker,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot register host functions: {0}")]
    Linker(String),
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let engine = build_engine(&options).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker = build_linker(&engine).map_err(|e| RuntimeError::Linker(format!("{e:#}")))?;
        let cache = CompileCache::open(&engine, options.cache_dir.clone());
        Ok(Runtime {
            _epoch: EpochTicker::start(engine.clone()),
            engine,
            linker,
            cache,
            host: options.host,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What every call's host is built from (mounts, HTTP settings, brokered secrets).
    pub fn host(&self) -> &HostConfig {
        &self.host
    }

    /// Compiles (or fetches from the cache), links and inspects one component.
    pub fn load(&self, spec: &ComponentSpec<'_>) -> Result<LoadedComponent, LoadError> {
        component::load(&self.engine, &self.linker, &self.cache, spec)
    }
}

/// wasmtime-wasi's WASI p2 and wasi:http, with `wasi:filesystem` replaced by our guarded
/// implementation ([`crate::host::fs`]): every path a tool names is checked and decided. Plus
/// our own `wasi:logging` and `wasi:config/store` ([`crate::host::logging`],
/// [`crate::host::config`]). Together: the `wit/` contract.
fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    use crate::host::bindings::wasi::config::store;
    use crate::host::bindings::wasi::logging::logging;
    use crate::host::config::Config as ConfigData;
    use crate::host::logging::Logging;
    use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    logging::add_to_linker::<CallState, Logging>(&mut linker, |state| &mut state.log)?;
    store::add_to_linker::<CallState, ConfigData>(&mut linker, |state| &mut state.config)?;
    linker.allow_shadowing(true);
    types::add_to_linker::<CallState, GuardedFs>(&mut linker, CallState::guarded_filesystem)?;
    preopens::add_to_linker::<CallState, GuardedFs>(&mut linker, CallState::guarded_filesystem)?;
    linker.allow_shadowing(false);
    Ok(linker)
}

fn build_engine(options: &RuntimeOptions) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK_BYTES)
        .consume_fuel(options.fuel)
        // wit_json converts maps and fixed-length lists, so components may use them.
        .wasm_component_model_map(true)
        .wasm_component_model_fixed_length_lists(true);
    // Pooling makes a fresh instance per call cheap (no mmap/munmap per call). Slots are sized
    // for the largest memory a call may get; the per-call `ResourceLimiter` enforces the
    // (possibly smaller) limit of each call.
    let mut pool = PoolingAllocationConfig::default();
    let slots = options.max_concurrent_calls.saturating_mul(2).max(16);
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(8))
        .total_memories(slots.saturating_mul(4))
        .total_tables(slots.saturating_mul(4))
        .total_stacks(slots)
        .max_memory_size(usize::try_from(options.max_memory_bytes).unwrap_or(usize::MAX));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            // Pooling reserves address space up front; where that is refused (tight ulimits),
            // fall back to on-demand allocation rather than not starting.
            tracing::warn!(%error, "pooling allocator unavailable; using on-demand instance allocation");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config)
        }
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gatehouse-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
