//! Running one function in a fresh, limited instance.
//!
//! Each call gets its own `Store` instantiated from the component's shared `InstancePre`, so no
//! state survives from one call to the next. A busy guest yields to the executor every epoch
//! tick, so a spinning tool never starves other calls, and is interrupted at its deadline.

use std::time::{Duration, Instant};

use wasmtime::component::Val;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::limits::CallLimits;
use super::{EPOCH_TICK, ExportedFunction, LoadedComponent, Runtime};
use crate::host::limits::{CallLimiter, LimitExceeded, LimitHit};
use crate::host::{CallHost, CallState};

/// Characters of guest stderr quoted in a trap message (the tail, where a panic message is).
const STDERR_IN_ERROR: usize = 2000;

/// Why a call did not produce a result. Messages are what the agent reads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("the tool trapped: {message}")]
    Trap { message: String },
    #[error("the tool exceeded its time limit of {} ms and was stopped", .limit.as_millis())]
    Timeout { limit: Duration },
    #[error(
        "the tool exceeded its memory limit of {limit} bytes (it asked for {requested}) and was stopped"
    )]
    MemoryLimit { limit: u64, requested: u64 },
    #[error(
        "the tool exceeded its table limit of {limit} elements (it asked for {requested}) and was stopped"
    )]
    TableLimit { limit: u64, requested: u64 },
    #[error("the tool used up its fuel of {limit} units (its CPU budget) and was stopped")]
    FuelLimit { limit: u64 },
    #[error(
        "component `{component}` is already running {limit} calls, its limit; try again when one has finished"
    )]
    Busy { component: String, limit: u32 },
    #[error(
        "rate limit: principal {principal:?} made {calls} calls in the last {window_secs} s ({setting} = {limit})"
    )]
    RateLimited {
        principal: String,
        calls: u64,
        window_secs: u64,
        /// Which setting the limit comes from: the configuration's or the policy's.
        setting: &'static str,
        limit: u64,
    },
    #[error(
        "concurrency limit: principal {principal:?} is already running {limit} calls (limits.max_concurrent_per_principal = {limit}); try again when one has finished"
    )]
    PrincipalBusy { principal: String, limit: u32 },
    #[error("the tool overflowed its stack (deep recursion) and was stopped")]
    StackOverflow,
    #[error("the tool's result is {size} bytes of JSON, over the limit of {limit} bytes")]
    ResultTooLarge { limit: u64, size: u64 },
    #[error("the tool could not be started: {message}")]
    Instantiate { message: String },
}

impl CallError {
    /// How the audit log records a call that ended this way (`limit`, `trap` or `error`).
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::Trap { .. } => "trap",
            CallError::Instantiate { .. } => "error",
            CallError::Timeout { .. }
            | CallError::MemoryLimit { .. }
            | CallError::TableLimit { .. }
            | CallError::StackOverflow
            | CallError::FuelLimit { .. }
            | CallError::Busy { .. }
            | CallError::RateLimited { .. }
            | CallError::PrincipalBusy { .. }
            | CallError::ResultTooLarge { .. } => "limit",
        }
    }

    /// A short, stable label for logs and the audit log: `trap`, `limit:time`, ….
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Trap { .. } => "trap",
            CallError::Timeout { .. } => "limit:time",
            CallError::MemoryLimit { .. } => "limit:memory",
            CallError::TableLimit { .. } => "limit:table",
            CallError::StackOverflow => "limit:stack",
            CallError::FuelLimit { .. } => "limit:fuel",
            CallError::Busy { .. } => "limit:concurrency",
            CallError::RateLimited { .. } => "limit:rate",
            CallError::PrincipalBusy { .. } => "limit:principal-concurrency",
            CallError::ResultTooLarge { .. } => "limit:result",
            CallError::Instantiate { .. } => "instantiate",
        }
    }
}

impl Runtime {
    /// Instantiates `component` in a fresh store and calls `function` with `params`; returns
    /// its result value, if the function has one.
    pub async fn call(
        &self,
        component: &LoadedComponent,
        function: &ExportedFunction,
        params: &[Val],
        limits: &CallLimits,
        host: CallHost,
    ) -> Result<Option<Val>, CallError> {
        let started = Instant::now();
        // A person approving one of the tool's requests stops the clock: the deadline moves.
        let waited = host.waited.clone();
        let state = CallState::new(&self.host, CallLimiter::new(limits.memory_bytes), host)
            .map_err(|e| CallError::Instantiate {
                message: e.to_string(),
            })?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(|e| CallError::Instantiate {
                message: format!("cannot grant fuel: {e}"),
            })?;
        }
        let deadline = started + limits.timeout;
        store.set_epoch_deadline(1);
        let waited_in_wasm = waited.clone();
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline + waited_in_wasm.total() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let run = async {
            let instance = component
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (e, true))?;
            let func = instance
                .get_func(&mut store, function.export)
                .expect("export index was resolved against this component at load");
            let mut results =
                vec![Val::Bool(false); usize::from(function.signature.result.is_some())];
            func.call_async(&mut store, params, &mut results)
                .await
                .map_err(|e| (e, false))?;
            Ok::<_, (wasmtime::Error, bool)>(results.pop())
        };
        // The epoch callback stops wasm that runs past the deadline; this outer timeout also
        // covers time spent waiting in host calls (a slow HTTP response), where no wasm runs.
        // It is re-armed while the deadline moves (a person approving a request).
        let outcome = {
            tokio::pin!(run);
            loop {
                let expires =
                    tokio::time::Instant::from_std(deadline + waited.total() + EPOCH_TICK * 4);
                match tokio::time::timeout_at(expires, &mut run).await {
                    Ok(finished) => break Ok(finished),
                    Err(elapsed)
                        if deadline + waited.total() + EPOCH_TICK * 4 <= Instant::now() =>
                    {
                        break Err(elapsed);
                    }
                    Err(_moved) => {}
                }
            }
        };
        let result = match outcome {
            Err(_elapsed) => Err(CallError::Timeout {
                limit: limits.timeout,
            }),
            Ok(Ok(result)) => Ok(result),
            Ok(Err((error, instantiating))) => Err(classify(&error, instantiating, limits, &store)),
        };
        // Whatever the ending, the call's dropped log lines are reported before it is recorded.
        store.data_mut().log.finish();
        log_guest_output(component, function, store.data());
        result
    }
}

/// Turns a wasmtime error into the limit or trap that caused it.
fn classify(
    error: &wasmtime::Error,
    instantiating: bool,
    limits: &CallLimits,
    store: &Store<CallState>,
) -> CallError {
    if let Some(LimitExceeded(hit)) = error.downcast_ref::<LimitExceeded>() {
        return match *hit {
            LimitHit::Memory { limit, requested } => CallError::MemoryLimit { limit, requested },
            LimitHit::TableElements { limit, requested } => {
                CallError::TableLimit { limit, requested }
            }
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout {
            limit: limits.timeout,
        },
        Some(Trap::StackOverflow) => CallError::StackOverflow,
        Some(Trap::OutOfFuel) => CallError::FuelLimit {
            limit: limits.fuel.unwrap_or_default(),
        },
        _ if instantiating => CallError::Instantiate {
            message: format!("{error:#}"),
        },
        Some(trap) => {
            let (_, stderr) = store.data().captured_output();
            let stderr = stderr.trim();
            // Compiled languages keep their call stack in linear memory, so deep recursion
            // usually surfaces as an out-of-bounds access rather than a wasm stack overflow.
            let trap = match trap {
                Trap::MemoryOutOfBounds => format!(
                    "{trap} (the tool accessed memory outside its own; in Rust or C tools this \
                     is typically its stack overflowing from deep recursion)"
                ),
                other => other.to_string(),
            };
            let message = if stderr.is_empty() {
                trap
            } else {
                format!(
                    "{trap}; the tool wrote to stderr: {}",
                    tail(stderr, STDERR_IN_ERROR)
                )
            };
            CallError::Trap { message }
        }
        None => CallError::Trap {
            message: format!("{error:#}"),
        },
    }
}

fn tail(text: &str, max_chars: usize) -> &str {
    let count = text.chars().count();
    if count <= max_chars {
        return text;
    }
    let skip = text
        .char_indices()
        .nth(count - max_chars)
        .map_or(0, |(i, _)| i);
    &text[skip..]
}

fn log_guest_output(component: &LoadedComponent, function: &ExportedFunction, state: &CallState) {
    let (stdout, stderr) = state.captured_output();
    for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
        if !text.is_empty() {
            tracing::info!(
                target: "gatehouse::guest",
                component = %component.name,
                function = %function.function,
                stream,
                output = %crate::support::logging::printable(text.trim_end()),
                "tool output"
            );
        }
    }
}
