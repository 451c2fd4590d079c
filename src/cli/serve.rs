//! `gatehouse serve`: load the components and speak MCP on stdio or streamable HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{GovernanceArgs, HostArgs};
use crate::auth::Transport;
use crate::auth::{AuthMethod, AuthenticatedPrincipal, JwtValidator};
use crate::config::{ComponentConfig, Config};
use crate::gateway::Gateway;
use crate::mcp::McpServer;
use crate::mcp::http::HttpOptions;
use crate::runtime::cache::CompileSource;
use crate::support::logging::LogFormat;
use crate::telemetry::Metrics;
use crate::telemetry::export::Traces;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A gatehouse.toml; the flags below add to it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A component to serve: a path, an https:// URL or an oci:// reference, optionally as
    /// NAME=… (repeatable).
    #[arg(long = "component", value_name = "[NAME=]PATH|URL")]
    pub components: Vec<String>,
    /// Serve streamable HTTP on this address (endpoint /mcp) instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub governance: GovernanceArgs,
}

/// Reads the config file (if any) and applies the flags on top.
pub(super) fn load_config(
    config: Option<&PathBuf>,
    components: &[String],
    host: &HostArgs,
) -> anyhow::Result<Config> {
    let mut config = match config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    for spec in components {
        let (name, location) = match spec.split_once('=') {
            Some((name, location)) if !name.contains("://") => (Some(name.to_owned()), location),
            _ => (None, spec.as_str()),
        };
        config
            .components
            .push(ComponentConfig::from_location(name, location));
    }
    host.apply(&mut config);
    Ok(config)
}

pub fn run(args: ServeArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let mut config = load_config(args.config.as_ref(), &args.components, &args.host)?;
    // Traces start before the log, whose subscriber carries their layer.
    let metrics = Metrics::new();
    let traces = Traces::start(&config.telemetry, metrics.traces())?;
    super::init_logging(log_format, "info", traces.as_ref());
    args.governance.apply(&mut config);
    if args.http.is_some() {
        config.server.http = args.http;
    }
    if config.components.is_empty() {
        anyhow::bail!("no components to serve: pass --component PATH or --config FILE");
    }
    let feed = super::bundle_feed::subscribe(&mut config)?;
    let runtime = super::tokio_runtime()?;
    let served = runtime.block_on(serve(config, args, metrics, feed));
    // Outside the runtime: sending the last spans blocks.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    config: Config,
    args: ServeArgs,
    metrics: Metrics,
    feed: Option<crate::supply::policy_bundle::Subscription>,
) -> anyhow::Result<()> {
    let mut gateway = Gateway::from_config_measured(&config, metrics)?;
    let shipping = start_shipping(&config, &mut gateway)?;
    let gateway = Arc::new(gateway);
    // Hot reload: a changed bundle is swapped in only if it compiles and its tests pass. A
    // fleet bundle changes by polling its URL, a local one by editing its directory.
    let _watcher = match feed {
        Some(feed) => {
            super::bundle_feed::poll(feed, gateway.policy().clone(), &config);
            None
        }
        None => Some(
            gateway
                .policy()
                .watch()
                .context("cannot watch the policy bundle for changes")?,
        ),
    };
    tokio::spawn(crate::policy::reload_on_sighup(gateway.policy().clone())?);
    // Components: a changed file, bundle or config (or SIGHUP) reloads them through the
    // supply-chain checks; a changed pin file releases tools an operator accepted.
    let reload = component_reloader(gateway.clone(), args);
    let _component_watcher = crate::support::watch::watch_files(
        "component-watch",
        watched_component_files(&config, reload.args()),
        {
            let reload = reload.clone();
            move || reload.reload()
        },
    )
    .context("cannot watch the component files for changes")?;
    let _pin_watcher = crate::support::watch::watch_files(
        "pin-watch",
        vec![gateway.pins().path().to_path_buf()],
        {
            let gateway = gateway.clone();
            move || {
                if let Err(error) = gateway.refresh_pins() {
                    tracing::error!(%error, "cannot re-read the tool-definition pins");
                }
            }
        },
    )
    .context("cannot watch the pin file for changes")?;
    tokio::spawn(reload_components_on_sighup(reload)?);
    tokio::spawn(rotate_on_sigusr1(
        gateway.audit().clone(),
        config.audit.path(),
        shipping.is_some(),
    )?);
    let result = serve_until_shutdown(&gateway, &config).await;
    match gateway.audit().close() {
        Ok(closed) => tracing::info!(
            entries = closed.tree_size,
            "audit log closed with a final checkpoint"
        ),
        Err(error) => tracing::error!(%error, "closing the audit log failed"),
    }
    // The final entries and checkpoint leave with the gateway when the store is reachable;
    // otherwise the next start ships them.
    if let Some(gate) = shipping
        && !gate.drain(Duration::from_secs(5)).await
    {
        tracing::warn!(
            acknowledged = gate.acknowledged(),
            "the fleet's store did not take the last audit entries before shutdown; they are shipped at the next start"
        );
    }
    result
}

/// Starts shipping the audit log to the fleet's store when `[fleet] postgres` is set (and
/// makes the gateway wait for it under `require_shipped`).
fn start_shipping(
    config: &Config,
    gateway: &mut Gateway,
) -> anyhow::Result<Option<crate::fleet::ShipGate>> {
    if !config.fleet.enabled() {
        config.fleet.validate().map_err(anyhow::Error::msg)?;
        return Ok(None);
    }
    let gate = crate::fleet::Shipper::start(
        &config.fleet,
        gateway.audit().path(),
        gateway.audit().signing_key().map(|k| k.verifier.clone()),
        gateway.metrics().fleet(),
    )?;
    if config.fleet.require_shipped {
        gateway.require_shipped(gate.clone());
    }
    Ok(Some(gate))
}

/// Re-reads the configuration and reloads the components from it.
#[derive(Clone)]
struct ComponentReloader {
    gateway: Arc<Gateway>,
    args: Arc<ServeArgs>,
}

fn component_reloader(gateway: Arc<Gateway>, args: ServeArgs) -> ComponentReloader {
    ComponentReloader {
        gateway,
        args: Arc::new(args),
    }
}

impl ComponentReloader {
    fn args(&self) -> &ServeArgs {
        &self.args
    }

    /// Blocking: compiles, may download.
    fn reload(&self) {
        let config = match load_config(
            self.args.config.as_ref(),
            &self.args.components,
            &self.args.host,
        ) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "config reload failed; components unchanged");
                return;
            }
        };
        match self.gateway.reload_components(&config.components) {
            Ok(report) => {
                for refused in &report.refused {
                    tracing::error!(reason = %refused, "component refused on reload; the previous version (if any) keeps serving");
                }
            }
            Err(error) => tracing::error!(%error, "component reload failed"),
        }
        if let Err(error) = self.gateway.refresh_pins() {
            tracing::error!(%error, "cannot re-read the tool-definition pins");
        }
    }
}

/// The files whose change reloads the components: the config file, each component file and
/// its signature bundle.
fn watched_component_files(config: &Config, args: &ServeArgs) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = args.config.iter().cloned().collect();
    for component in &config.components {
        if let Some(path) = &component.path {
            files.push(path.clone());
            let mut bundle = path.as_os_str().to_owned();
            bundle.push(".sigstore.json");
            files.push(PathBuf::from(bundle));
        }
        if let Some(bundle) = &component.bundle
            && !bundle.contains("://")
        {
            files.push(PathBuf::from(bundle));
        }
    }
    files
}

/// Registers a SIGHUP handler now; the returned future reloads the components on each SIGHUP.
fn reload_components_on_sighup(
    reload: ComponentReloader,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the components");
            let reload = reload.clone();
            let _ = tokio::task::spawn_blocking(move || reload.reload()).await;
        }
    })
}

/// Retention without deleting a row: on SIGUSR1 the audit log is sealed with a final checkpoint
/// and writing goes on in a new file beside it, `<stem>.<UTC time>.db`, whose first entry
/// records the sealed file's path, size and final checkpoint. Old files can then be shipped
/// off the host and verified on their own.
/// While the log is shipped to the fleet's store (`shipping`), a rotation is refused: the
/// shipper follows one file, and a new log under the same gateway id would be a second chain.
fn rotate_on_sigusr1(
    audit: crate::audit::AuditLog,
    configured: std::path::PathBuf,
    shipping: bool,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut user1 = signal(SignalKind::user_defined1())?;
    Ok(async move {
        while user1.recv().await.is_some() {
            if shipping {
                tracing::error!(
                    "SIGUSR1: not rotating the audit log: it is shipped to the fleet's store ([fleet] postgres), which keeps one chain per gateway id; still writing the same file"
                );
                continue;
            }
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
            let stem = configured
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "gatehouse-audit".into());
            let next = configured.with_file_name(format!("{stem}.{stamp}.db"));
            let audit = audit.clone();
            let rotated = tokio::task::spawn_blocking(move || audit.rotate(&next, None)).await;
            match rotated {
                Ok(Ok(rotated)) => tracing::info!(
                    sealed = %rotated.previous_path.display(),
                    sealed_entries = rotated.previous_tree_size,
                    now_writing = %rotated.path.display(),
                    "SIGUSR1: audit log rotated"
                ),
                Ok(Err(error)) => {
                    tracing::error!(%error, "SIGUSR1: rotating the audit log failed; still writing the old file")
                }
                Err(error) => tracing::error!(%error, "SIGUSR1: the rotation task failed"),
            }
        }
    })
}

async fn serve_until_shutdown(gateway: &Arc<Gateway>, config: &Config) -> anyhow::Result<()> {
    let gateway = gateway.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_termination().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    });
    let metrics_listener = serve_metrics(&gateway, config, &shutdown).await?;
    match config.server.http {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            print_banner(
                &gateway,
                config,
                &format!("streamable HTTP at http://{local}/mcp"),
            );
            print_metrics_url(config, metrics_listener.or(Some(local)));
            let ui = ui_options(&gateway, config)?;
            match &ui {
                Some(_) => eprintln!("  web view: http://{local}{}/", crate::ui::PATH),
                None => eprintln!("  web view: off (name its auditors in [ui])"),
            }
            let options = HttpOptions {
                extra_hosts: config.server.allowed_hosts.clone(),
                api_keys: config.api_keys.clone(),
                allow_anonymous: config.server.allow_anonymous,
                jwt: match &config.auth.jwt {
                    Some(settings) => Some(
                        JwtValidator::new(settings)
                            .await
                            .context("[auth.jwt] cannot be used")?,
                    ),
                    None => None,
                },
                max_argument_bytes: usize::try_from(config.limits.max_argument_bytes)
                    .unwrap_or(usize::MAX),
                metrics: config
                    .metrics
                    .on_mcp_listener()
                    .then(|| gateway.metrics().clone()),
                metrics_auth: config.metrics.auth,
                ui,
            };
            crate::mcp::http::serve(gateway, listener, options, shutdown).await?;
        }
        None => {
            print_banner(&gateway, config, "stdio");
            print_metrics_url(config, metrics_listener);
            if config.ui.enabled() {
                eprintln!("  web view: not served over stdio (give --http)");
            }
            let server = McpServer::new(
                gateway,
                Transport::Stdio,
                AuthenticatedPrincipal {
                    principal: config.server.stdio_principal.clone(),
                    authenticated: true,
                    auth: AuthMethod::Stdio,
                    claims: serde_json::Map::new(),
                },
            );
            let max_line = usize::try_from(config.limits.max_argument_bytes).unwrap_or(usize::MAX)
                + (64 << 10);
            let service = rmcp::ServiceExt::serve(server, crate::mcp::stdio::transport(max_line))
                .await
                .context("MCP session on stdio failed to start")?;
            tokio::select! {
                result = service.waiting() => { result.context("MCP session on stdio failed")?; }
                () = shutdown.cancelled() => {}
            }
        }
    }
    Ok(())
}

/// Opens the metrics' own listener (`[metrics] listen`), if configured; its address.
async fn serve_metrics(
    gateway: &Gateway,
    config: &Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = config.metrics.own_listener().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics ([metrics] listen)"))?;
    let local = listener.local_addr()?;
    let metrics = gateway.metrics().clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(error) = crate::telemetry::endpoint::serve(metrics, listener, shutdown).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(Some(local))
}

/// The web view's settings, when `[ui]` names someone: the log it reads and the key its
/// checkpoints are signed with.
fn ui_options(gateway: &Gateway, config: &Config) -> anyhow::Result<Option<crate::ui::UiOptions>> {
    if !config.ui.enabled() {
        return Ok(None);
    }
    config.ui.validate().map_err(anyhow::Error::msg)?;
    if config.api_keys.is_empty() && config.auth.jwt.is_none() {
        anyhow::bail!(
            "[ui] names auditors, but nobody can log in: configure [[api_keys]] or [auth.jwt] \
             for them"
        );
    }
    let checkpoint_key = match gateway.audit().signing_key() {
        Some(key) => Some(
            crate::audit::NoteVerifier::parse(&key.verifier)
                .map_err(|e| anyhow::anyhow!("the audit log's public key: {e}"))?,
        ),
        None => None,
    };
    Ok(Some(crate::ui::UiOptions {
        settings: config.ui.clone(),
        audit_path: config.audit.path(),
        checkpoint_key,
        approvals_path: config.approvals.path(),
    }))
}

/// The banner's line saying where Prometheus scrapes, if anywhere.
fn print_metrics_url(config: &Config, at: Option<SocketAddr>) {
    match (config.metrics.enabled, at) {
        (false, _) => eprintln!("  metrics: off ([metrics] enabled = false)"),
        (true, Some(addr)) => eprintln!(
            "  metrics: http://{addr}{}",
            crate::telemetry::endpoint::PATH
        ),
        (true, None) => eprintln!("  metrics: not served over stdio (give [metrics] listen)"),
    }
}

async fn wait_for_termination() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// A short summary on stderr: where we listen, what we serve, which files we use.
fn print_banner(gateway: &Gateway, config: &Config, listening: &str) {
    let mut banner = format!(
        "gatehouse {} — MCP over {listening}\n",
        env!("CARGO_PKG_VERSION")
    );
    let catalog = gateway.catalog();
    for component in &catalog.components {
        let how = match component.compiled {
            CompileSource::Cached => "loaded from cache",
            CompileSource::Compiled => "compiled",
        };
        let signed = match &component.provenance.signer {
            Some(signer) => format!("signed by {signer}"),
            None => "unsigned".to_owned(),
        };
        banner.push_str(&format!(
            "  component {} — {} ({} KiB, {}, {signed}, {how} in {} ms)\n",
            component.name,
            component.provenance.source,
            component.size_bytes.div_ceil(1024),
            &component.digest[..19],
            component.load_time.as_millis(),
        ));
        let names: Vec<&str> = component
            .functions
            .iter()
            .map(|f| f.tool_name.as_str())
            .collect();
        banner.push_str(&format!("    tools: {}\n", names.join(", ")));
        for name in catalog
            .withheld
            .keys()
            .filter(|n| n.starts_with(&format!("{}_", component.name)))
        {
            banner.push_str(&format!(
                "    WITHHELD: {name} — its definition changed; `gatehouse component accept {name}`\n"
            ));
        }
        for skipped in &component.skipped {
            banner.push_str(&format!(
                "    not offered: {} — {}\n",
                skipped.name, skipped.reason
            ));
        }
    }
    let mounts: Vec<String> = config
        .mounts
        .iter()
        .map(|m| {
            format!(
                "{}→{}{}",
                m.host.display(),
                m.guest,
                if m.writable { " (rw)" } else { "" }
            )
        })
        .collect();
    banner.push_str(&format!(
        "  policy: {} (revision {}){}\n  audit log: {}\n",
        gateway.policy().dir().display(),
        &gateway.policy().revision()[..19.min(gateway.policy().revision().len())],
        if config.policy.data.is_empty() {
            String::new()
        } else {
            format!(
                ", data {}",
                config
                    .policy
                    .data
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        config.audit.path().display(),
    ));
    banner.push_str(&match gateway.audit().signing_key() {
        Some(key) => format!(
            "  audit checkpoints signed with {} (public key: {})\n",
            key.path.display(),
            key.verifier
        ),
        None => "  audit checkpoints UNSIGNED: they prove internal consistency only (give \
                 --audit-key-dir or --audit-key)\n"
            .to_owned(),
    });
    if let (Some(postgres), Ok(id)) = (&config.fleet.postgres, config.fleet.gateway_id()) {
        banner.push_str(&format!(
            "  audit shipped to the fleet's store as {id}: {}{}\n",
            crate::fleet::store::describe_conninfo(postgres),
            if config.fleet.require_shipped {
                " (require_shipped: an allowed call waits for its verdict to be shipped)"
            } else {
                ""
            }
        ));
    }
    banner.push_str(&match &config.telemetry.otlp_endpoint {
        Some(endpoint) => format!("  traces: OTLP to {}\n", endpoint.traces_url()),
        None => "  traces: off ([telemetry] otlp_endpoint)\n".to_owned(),
    });
    banner.push_str(&format!(
        "  mounts: {}\n  outgoing HTTP and file access: decided per request by the policy (phases http, fs, socket)\n",
        if mounts.is_empty() {
            "none".to_owned()
        } else {
            mounts.join(", ")
        },
    ));
    eprint!("{banner}");
}
