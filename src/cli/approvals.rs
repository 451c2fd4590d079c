//! `gatehouse approvals`: an operator answers the questions a running gateway asks.
//!
//! It works on the gateway's approvals file (`[approvals] path`), which the gateway polls
//! while a question waits, so an answer given here reaches a waiting call within a fraction
//! of a second, and an approval of a question nobody could be asked lets the caller's retry
//! through.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::approval::{ApprovalSettings, ApprovalStore, Scope, StoredQuestion};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
    /// The gateway's config, to find its approvals file.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// The approvals file (default `gatehouse-approvals.db`, where `gatehouse serve` keeps it
    /// when run from this directory).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// The questions waiting for an answer (newest first).
    List {
        /// Every question, answered and expired ones too.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting question.
    Approve {
        /// The question's id (`q-…`).
        id: String,
        /// What the approval covers: `once`, `session`, or a number of minutes.
        #[arg(
            long = "for",
            value_name = "once|session|MINUTES",
            default_value = "once"
        )]
        scope: Scope,
        /// Who answers (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        operator: Option<String>,
    },
    /// Deny a waiting question.
    Deny {
        /// The question's id (`q-…`).
        id: String,
        /// Why, for the caller and the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Who answers (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        operator: Option<String>,
    },
}

pub fn run(args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let settings = match (&args.config, &args.db) {
        (Some(config), _) => Config::load(config)?.approvals,
        (None, db) => ApprovalSettings {
            path: db.clone(),
            ..ApprovalSettings::default()
        },
    };
    let path = settings.path();
    if !path.exists() {
        bail!(
            "no approvals file at {} (the gateway creates it when its policy first asks; give \
             --db FILE or --config FILE if it keeps it elsewhere)",
            path.display()
        );
    }
    let store = ApprovalStore::open(&path)?;
    let operator = |name: Option<String>| {
        name.or_else(|| std::env::var("USER").ok())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "operator".to_owned())
    };
    let mut out = std::io::stdout().lock();
    match args.command {
        ApprovalsCommand::List { all, json } => {
            let questions = store.list(all)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &questions)?;
                writeln!(out)?;
            } else {
                list(&mut out, &questions, all)?;
            }
        }
        ApprovalsCommand::Approve {
            id,
            scope,
            operator: name,
        } => {
            let question = store
                .decide(&id, &operator(name), Some(scope), None)
                .with_context(|| format!("cannot approve {id}"))?;
            writeln!(
                out,
                "approved {} ({scope}): {} {}",
                question.id, question.tool, question.action
            )?;
        }
        ApprovalsCommand::Deny {
            id,
            reason,
            operator: name,
        } => {
            let question = store
                .decide(&id, &operator(name), None, reason)
                .with_context(|| format!("cannot deny {id}"))?;
            writeln!(
                out,
                "denied {}: {} {}",
                question.id, question.tool, question.action
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(out: &mut impl Write, questions: &[StoredQuestion], all: bool) -> anyhow::Result<()> {
    if questions.is_empty() {
        writeln!(
            out,
            "{}",
            if all {
                "no questions"
            } else {
                "no question is waiting"
            }
        )?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = questions
        .iter()
        .map(|q| {
            vec![
                q.id.clone(),
                q.status.as_str().to_owned(),
                q.asked.clone(),
                q.principal.clone(),
                q.tool.clone(),
                q.phase.clone(),
                q.action.clone(),
                q.messages.join("; "),
            ]
        })
        .collect();
    super::audit::write_table(
        out,
        Some(&[
            "ID", "STATUS", "ASKED", "CALLER", "TOOL", "PHASE", "ACTION", "WHY",
        ]),
        &rows,
    )?;
    Ok(())
}
