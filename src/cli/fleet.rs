//! `gatehouse fleet …` and the `--postgres` side of `gatehouse audit …`: the fleet's shared
//! audit store, read by auditors (never written, except the schema by `fleet init`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::audit::{Format, StoreArgs, write_table};
use crate::audit::{EntryFilter, NoteVerifier, Stats};
use crate::fleet::check::{FleetKeys, verify_fleet};
use crate::fleet::query::FleetEntry;
use crate::fleet::{Store, query as fleet_query};

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Apply the store's schema (audit/postgres.sql) as the database's owner; grant the role
    /// `gatehouse_gateway` to each gateway's login role and `gatehouse_auditor` to auditors.
    Init {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Each replica: last entry shipped, lag, policy revision, component digests.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn run(args: FleetArgs) -> Result<ExitCode> {
    match args.command {
        FleetCommand::Init { store } => block_on(async {
            let mut db = connect(&store).await?;
            let applied = db.ensure_schema().await?;
            println!(
                "{}: {}",
                db.describe(),
                if applied {
                    "schema version 1 applied"
                } else {
                    "schema already present"
                }
            );
            Ok(ExitCode::SUCCESS)
        }),
        FleetCommand::Status { store, format } => block_on(async {
            let db = connect(&store).await?;
            let replicas = fleet_query::status(&db).await?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            if format == Format::Json {
                for r in &replicas {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = replicas
                .iter()
                .map(|r| {
                    vec![
                        r.gateway_id.clone(),
                        r.shipped_seq.to_string(),
                        r.last_shipped_time.clone().unwrap_or_else(|| "-".into()),
                        r.lag.to_string(),
                        r.heartbeat.clone().unwrap_or_else(|| "-".into()),
                        r.policy_revision.clone().unwrap_or_else(|| "-".into()),
                        r.components
                            .iter()
                            .map(|(tool, digest)| format!("{tool}={digest}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                })
                .collect();
            write_table(
                &mut out,
                Some(&[
                    "GATEWAY",
                    "SHIPPED",
                    "LAST ENTRY",
                    "LAG",
                    "HEARTBEAT",
                    "POLICY",
                    "COMPONENTS",
                ]),
                &rows,
            )?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Entries across the fleet (`audit query|show --postgres`).
pub(super) fn query(store: &StoreArgs, filter: &EntryFilter) -> Result<Vec<FleetEntry>> {
    block_on(async {
        let db = connect(store).await?;
        Ok(fleet_query::query(&db, filter, store.gateway.as_deref()).await?)
    })
}

/// Statistics across the fleet (`audit stats --postgres`), and the store's name.
pub(super) fn stats(store: &StoreArgs, since: Option<&str>) -> Result<(Stats, String)> {
    block_on(async {
        let db = connect(store).await?;
        let stats = fleet_query::stats(&db, since, store.gateway.as_deref()).await?;
        Ok((stats, db.describe().to_owned()))
    })
}

/// `audit verify --postgres`: exit 1 naming every inconsistency.
pub(super) fn verify(
    store: &StoreArgs,
    default_key: Option<NoteVerifier>,
    gateway_keys: &[String],
    json: bool,
) -> Result<ExitCode> {
    let mut keys: FleetKeys = Vec::new();
    for spec in gateway_keys {
        let (id, file) = spec
            .split_once('=')
            .with_context(|| format!("--gateway-key {spec:?}: expected GATEWAY=FILE"))?;
        keys.push((Some(id.to_owned()), NoteVerifier::load(file.as_ref())?));
    }
    if let Some(key) = default_key {
        keys.push((None, key));
    }
    let report = block_on(async {
        let db = connect(store).await?;
        Ok(verify_fleet(&db, store.gateway.as_deref(), &keys).await?)
    })?;
    let code = if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(code);
    }
    writeln!(out, "store: {}", report.store)?;
    for g in &report.gateways {
        let r = &g.report;
        writeln!(
            out,
            "\n{}: {} entries (root {}), {} checkpoints ({} signed, signatures {}), lag {} (local seq {}, heartbeat {})",
            g.gateway_id,
            r.entries,
            r.root,
            r.checkpoints,
            r.signed_checkpoints,
            if r.signatures_checked {
                "checked"
            } else {
                "NOT checked"
            },
            g.lag,
            g.local_seq,
            g.heartbeat.as_deref().unwrap_or("never"),
        )?;
        for w in r
            .warnings
            .iter()
            .filter(|w| !w.starts_with("No external checkpoint"))
        {
            writeln!(out, "  WARNING: {w}")?;
        }
        if let Some((a, b)) = r.uncovered {
            writeln!(
                out,
                "  not yet covered: entries {a}..={b} come after its last shipped checkpoint"
            )?;
        }
        for p in &r.problems {
            writeln!(
                out,
                "  FAILED {}: seq {}: {}",
                g.gateway_id,
                p.seq.map_or("?".into(), |s| s.to_string()),
                p.what
            )?;
        }
        if r.more_problems > 0 {
            writeln!(out, "  … and {} more", r.more_problems)?;
        }
        for p in &g.fleet_problems {
            writeln!(out, "  FAILED {}: {p}", g.gateway_id)?;
        }
        if g.is_intact() {
            writeln!(out, "  OK")?;
        }
    }
    for p in &report.problems {
        writeln!(out, "\nFAILED fleet: {p}")?;
    }
    if report.is_intact() {
        writeln!(
            out,
            "\nOK: every gateway's chain matches its hashes and checkpoints, no seq is missing, no decision is recorded twice."
        )?;
    }
    Ok(code)
}

async fn connect(store: &StoreArgs) -> Result<Store> {
    let Some(url) = &store.postgres else {
        bail!("give --postgres URL");
    };
    Ok(Store::connect(url, None, store.ca_file.as_deref()).await?)
}

fn block_on<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}
