//! The gateway: the tools being served and the pipeline every call goes through.
//!
//! - [`catalog`]: which components and tools are served, loaded through the supply-chain checks
//!   and replaced as a whole on reload;
//! - [`call`]: the call pipeline, top to bottom (policy input → `call` decision → verdict
//!   committed → run → `result` decision → outcome committed → answer), with `admission`
//!   (rates, concurrency), `inflight` (the host's decisions during a run) and `answer` (what
//!   the agent receives) beside it;
//! - `listing`: which tools a caller may see.
//!
//! This is the only module that sequences policy, audit and runtime; none of them knows about
//! the others.

mod admission;
mod answer;
mod approve;
pub mod call;
pub mod catalog;
mod inflight;
mod listing;
mod record;
pub mod session;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::approval::Approvals;
use crate::audit::{AuditLog, AuditSink};
use crate::auth::Caller;
use crate::config::{ComponentConfig, Config, LimitsConfig};
use crate::host::HostConfig;
pub use crate::host::guard::{LogLevel, ToolLog, ToolLogLine};
use crate::host::http::HttpSettings;
use crate::policy::PolicyStore;
use crate::runtime::{LoadError, LoadedComponent, Runtime, RuntimeError, RuntimeOptions};
use crate::secrets::Secrets;
use crate::supply::pins::PinStore;
use crate::supply::{Fetcher, SupplyError};
use crate::telemetry::Metrics;
pub use admission::{Admission, MAX_CALLS_PER_MINUTE, RATE_WINDOW, Ticket};
pub use answer::REDACTED;
pub use call::{CallContext, CallResult};
pub use catalog::{Catalog, CatalogStore, ReloadReport, Tool, ToolDefinition, ToolHints, Withheld};
pub use inflight::{InFlight, LogObserver, Tally};
pub use session::{PrincipalSessions, Session};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Config(String),
    #[error("policy bundle: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("two components are named `{0}`; give one of them another `name`")]
    DuplicateComponent(String),
    #[error(transparent)]
    Supply(#[from] SupplyError),
    #[error(transparent)]
    Pins(#[from] crate::supply::pins::PinError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// The served tools, the runtime that runs them, and what decides and records each call.
pub struct Gateway {
    runtime: Runtime,
    catalog: CatalogStore,
    policy: PolicyStore,
    /// The log itself: closing, rotation, reads.
    audit: AuditLog,
    /// Where the call pipeline records (the same log, unless a test substitutes a sink).
    sink: Arc<dyn AuditSink>,
    limits: LimitsConfig,
    slots: Semaphore,
    /// Per-principal rate and concurrency, per-component concurrency.
    admission: Admission,
    /// The sessions of requests that come without one (MCP over HTTP from 2026-07-28 on).
    principal_sessions: PrincipalSessions,
    /// Where `ask` decisions are answered.
    approvals: Arc<Approvals>,
    metrics: Metrics,
    /// With `[fleet] require_shipped`: an allowed call runs only once its verdict is in the
    /// fleet's store.
    ship_gate: Option<crate::fleet::ShipGate>,
}

impl Gateway {
    /// Loads the policy bundle, opens the audit log, builds the runtime and loads every
    /// component the configuration names. Any failure refuses to start.
    pub fn from_config(config: &Config) -> Result<Gateway, GatewayError> {
        Gateway::from_config_measured(config, Metrics::new())
    }

    /// [`Gateway::from_config`], recording into `metrics` (whose trace part the trace
    /// exporter, started before the gateway, already records into).
    pub fn from_config_measured(
        config: &Config,
        metrics: Metrics,
    ) -> Result<Gateway, GatewayError> {
        Admission::validate(&config.limits).map_err(GatewayError::Config)?;
        session::validate_history(config.limits.session_history).map_err(GatewayError::Config)?;
        // Before anything is opened: a missing or exposed secret refuses to start.
        let secrets = Secrets::load(&config.secrets)?;
        secrets.check_not_in_env(&config.env)?;
        let policy = PolicyStore::load(
            config.policy.dir(),
            &config.policy.data,
            crate::policy::PolicyOptions {
                evaluator: config.policy.evaluator,
                metrics: metrics.policy(),
                ..Default::default()
            },
        )?;
        let audit = AuditLog::open(
            &config.audit.path(),
            crate::audit::AuditConfig {
                metrics: metrics.audit(),
                ..config.audit.writer_config()
            },
        )?;
        let runtime = Self::runtime_with(config, Arc::new(secrets))?;
        let gateway = Gateway::assemble(runtime, config, policy, audit, metrics)?;
        gateway.grant_env(&config.env, &config.components)?;
        Ok(gateway)
    }

    /// Fail closed on the fleet's store (`[fleet] require_shipped`): from now on an allowed
    /// call runs only once `gate` says its verdict was shipped, and is refused (recorded as
    /// denied, with the reason) when that does not happen in time.
    pub fn require_shipped(&mut self, gate: crate::fleet::ShipGate) {
        self.ship_gate = Some(gate);
    }

    /// The runtime a configuration describes, without its secrets (for `gatehouse tools`,
    /// which runs nothing and so needs no policy, audit log or secret).
    pub fn runtime_for(config: &Config) -> Result<Runtime, GatewayError> {
        Self::runtime_with(config, Arc::default())
    }

    fn runtime_with(config: &Config, secrets: Arc<Secrets>) -> Result<Runtime, GatewayError> {
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: config.cache.resolved_dir(),
            host: HostConfig {
                mounts: config.mounts.clone(),
                http: Arc::new(HttpSettings::from_config(&config.http).with_secrets(secrets)),
            },
            max_memory_bytes: config.limits.memory_bytes,
            max_concurrent_calls: config.limits.max_concurrent_calls,
            fuel: config.limits.fuel > 0,
        })?;
        Ok(runtime)
    }

    /// Loads every configured component through the supply-chain checks; any failure refuses
    /// to start, naming the component (and is recorded in the audit log first). The metrics
    /// are new: they include the policy store's and the log's only when those were opened with
    /// [`Metrics::policy`] and [`Metrics::audit`] of the same set, as `from_config` does.
    pub fn new(
        runtime: Runtime,
        config: &Config,
        policy: PolicyStore,
        audit: AuditLog,
    ) -> Result<Gateway, GatewayError> {
        Gateway::assemble(runtime, config, policy, audit, Metrics::new())
    }

    fn assemble(
        runtime: Runtime,
        config: &Config,
        policy: PolicyStore,
        audit: AuditLog,
        metrics: Metrics,
    ) -> Result<Gateway, GatewayError> {
        let approvals = Approvals::new(config.approvals.clone())
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        let gateway = Gateway {
            approvals,
            catalog: CatalogStore::new(
                &config.supply_chain,
                Fetcher::new(&config.supply_chain, config.cache.resolved_dir()),
                PinStore::new(config.pins_path()),
                audit.clone(),
            ),
            runtime,
            slots: Semaphore::new(config.limits.max_concurrent_calls as usize),
            admission: Admission::new(&config.limits),
            principal_sessions: PrincipalSessions::new(
                config.limits.session_history,
                metrics.clone(),
            ),
            limits: config.limits.clone(),
            policy,
            sink: Arc::new(audit.clone()),
            audit,
            metrics,
            ship_gate: None,
        };
        match gateway.catalog.load(&gateway.runtime, &config.components) {
            Ok(()) => {
                gateway.count_served();
                Ok(gateway)
            }
            Err(error) => {
                // Seal what was recorded (the refusal included) and release the log's lock
                // before reporting, so that a corrected start can open it at once.
                if let Err(close) = gateway.audit.close() {
                    tracing::error!(error = %close, "closing the audit log failed");
                }
                Err(error)
            }
        }
    }

    /// A new session (an MCP session, a stdio connection): what its policy decisions
    /// remember of one another.
    pub fn open_session(&self) -> Arc<Session> {
        Session::new(self.limits.session_history, &self.metrics)
    }

    /// The session of `principal`'s requests that arrive outside any transport session.
    pub fn principal_session(&self, principal: &str) -> Arc<Session> {
        self.principal_sessions.session_of(principal)
    }

    /// See [`CatalogStore::grant_env`].
    pub fn grant_env(
        &self,
        pool: &std::collections::BTreeMap<String, String>,
        components: &[ComponentConfig],
    ) -> Result<(), GatewayError> {
        self.catalog.grant_env(pool, components)
    }

    /// See [`CatalogStore::reload`].
    pub fn reload_components(
        &self,
        components: &[ComponentConfig],
    ) -> Result<ReloadReport, GatewayError> {
        let report = self.catalog.reload(&self.runtime, components);
        let ok = report.as_ref().is_ok_and(|r| r.refused.is_empty());
        self.metrics.reloaded("components", ok);
        self.count_served();
        report
    }

    /// See [`CatalogStore::refresh_pins`].
    pub fn refresh_pins(&self) -> Result<Vec<String>, GatewayError> {
        let released = self.catalog.refresh_pins();
        self.count_served();
        released
    }

    fn count_served(&self) {
        let catalog = self.catalog();
        self.metrics
            .serving(catalog.components.len(), catalog.tools.len());
    }

    /// What this gateway measures (served at `/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The pin file the gateway reads (and `gatehouse component accept` writes).
    pub fn pins(&self) -> &PinStore {
        self.catalog.pins()
    }

    /// What decides whether an allowed call may start now (rates and concurrency).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The catalog being served now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.current()
    }

    /// Looks a tool up by name, without any policy check (for the local CLI).
    pub fn tool(&self, name: &str) -> Option<Tool> {
        self.catalog().tools.get(name).cloned()
    }

    pub fn components(&self) -> Vec<Arc<LoadedComponent>> {
        self.catalog().components.clone()
    }

    pub fn policy(&self) -> &PolicyStore {
        &self.policy
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Where `ask` decisions are answered.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// Records that a transport refused `caller`'s credential (phase `auth`, verdict `deny`)
    /// for `reason`. The caller is the one that would have been served; the reason must name
    /// what was wrong, never the credential.
    pub async fn record_refused_credential(
        &self,
        caller: &Caller,
        reason: &str,
    ) -> Result<(), crate::audit::AuditError> {
        let input = serde_json::json!({
            "phase": "auth",
            "time": record::now(),
            "caller": caller,
            "reason": reason,
        });
        let caller = serde_json::to_value(caller).unwrap_or_default();
        let mut entry = crate::audit::NewEntry::new("auth", "deny", caller, input);
        entry.reasons = vec![reason.to_owned()];
        self.audit.append(entry).await.map(drop)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Records calls and listings through `sink` from now on instead of the audit log itself,
    /// so that a test can make recording fail and watch the pipeline fail closed. `sink` must
    /// record into this gateway's log (wrap [`Gateway::audit`]) — see [`AuditSink`].
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Gateway {
        self.sink = sink;
        self
    }
}
