//! Command-line entry point: argument parsing and dispatch to the subcommands.

mod approvals;
pub mod audit;
mod bench;
mod bundle_feed;
mod call;
mod component;
mod fleet;
mod new;
pub mod policy;
mod progress;
mod replay;
mod serve;
mod tools;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, MountConfig};
use crate::support::logging::{self, LogFormat};
use crate::telemetry::export::Traces;

/// Gatehouse: serve WebAssembly components to AI agents as MCP tools, behind Rego policies and
/// an append-only audit log.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// Log line format (logs always go to stderr; filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve components as MCP tools over stdio (default) or streamable HTTP.
    Serve(serve::ServeArgs),
    /// Print the tools and JSON schemas a component yields.
    Tools(tools::ToolsArgs),
    /// Call one function of a component, with WAVE or JSON arguments.
    Call(call::CallArgs),
    /// Test and evaluate Rego policy bundles.
    Policy(policy::PolicyArgs),
    /// Query, verify and prove the audit log.
    Audit(audit::AuditArgs),
    /// Answer the questions a running gateway asks when its policy says `ask`.
    Approvals(approvals::ApprovalsArgs),
    /// Supply chain: verify a component's signature, inspect what it asks for, accept a
    /// changed tool definition.
    Component(component::ComponentArgs),
    /// Drive a running gateway's streamable HTTP endpoint with concurrent MCP clients.
    Bench(bench::BenchArgs),
    /// Start a tool project (Rust, Python or JavaScript) that builds and serves as it is.
    New(new::NewArgs),
    /// The fleet's shared audit store (PostgreSQL): create its schema, see each replica.
    Fleet(fleet::FleetArgs),
}

/// How components reach the host; shared by `serve` and `call`.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Mount a host directory: HOST_DIR::GUEST_DIR (read-only) or HOST_DIR::GUEST_DIR::rw.
    #[arg(long = "dir", value_name = "HOST::GUEST[::rw]")]
    pub dirs: Vec<MountConfig>,
    /// Directory for compiled components (default: $XDG_CACHE_HOME/gatehouse). Not used if it
    /// is a symlink, someone else's, or writable by group or others.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<std::path::PathBuf>,
}

impl HostArgs {
    /// Adds the flags to a config (flags extend what the file says).
    pub fn apply(&self, config: &mut Config) {
        config.mounts.extend(self.dirs.iter().cloned());
        if self.cache_dir.is_some() {
            config.cache.dir = self.cache_dir.clone();
        }
    }
}

/// Which policy decides and where the audit log goes; shared by `serve` and `call`.
#[derive(Debug, Clone, Args)]
pub struct GovernanceArgs {
    /// Policy bundle directory (default: `policies`, the bundle shipped with Gatehouse).
    #[arg(long, value_name = "DIR")]
    pub policies: Option<std::path::PathBuf>,
    /// A data file merged over the bundle's data (repeatable; later files win).
    #[arg(long = "policy-data", value_name = "FILE")]
    pub policy_data: Vec<std::path::PathBuf>,
    /// How decisions are evaluated (config `policy.evaluator`; policies/README.md, "Evaluators").
    #[arg(long = "policy-evaluator", value_enum, value_name = "EVALUATOR")]
    pub policy_evaluator: Option<crate::policy::Evaluator>,
    /// The audit log (SQLite; created on first start; default `gatehouse-audit.db`).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<std::path::PathBuf>,
    /// Ed25519 key that signs audit checkpoints (`gatehouse audit keygen`).
    #[arg(long, value_name = "FILE")]
    pub audit_key: Option<std::path::PathBuf>,
    /// State directory for the audit keys (mode 0700; created on first start): its checkpoint
    /// key signs unless --audit-key names another; it holds the redaction key. Default
    /// `$XDG_STATE_HOME/gatehouse` or `~/.local/state/gatehouse`.
    #[arg(long, value_name = "DIR")]
    pub audit_key_dir: Option<std::path::PathBuf>,
}

impl GovernanceArgs {
    /// Adds the flags to a config (flags win over the file).
    pub fn apply(&self, config: &mut Config) {
        if self.policies.is_some() {
            config.policy.dir = self.policies.clone();
        }
        config.policy.data.extend(self.policy_data.iter().cloned());
        if let Some(evaluator) = self.policy_evaluator {
            config.policy.evaluator = evaluator;
        }
        if self.audit.is_some() {
            config.audit.path = self.audit.clone();
        }
        if self.audit_key.is_some() {
            config.audit.signing_key = self.audit_key.clone();
        }
        if self.audit_key_dir.is_some() {
            config.audit.key_dir = self.audit_key_dir.clone();
        }
        if config.audit.key_dir.is_none() {
            config.audit.key_dir = crate::audit::default_key_dir();
            if config.audit.key_dir.is_none() {
                tracing::warn!(
                    "neither XDG_STATE_HOME nor HOME is set: no audit key directory, so \
                     checkpoints are unsigned; give --audit-key-dir DIR"
                );
            }
        }
    }
}

/// Parses the command line, runs the subcommand and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::install();
    // The server logs its life; one-shot commands only speak up when something is wrong.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "error",
    };
    // `serve` starts its logging once it has read the config, which may ask for traces.
    if !matches!(cli.command, Command::Serve(_)) {
        init_logging(cli.log_format, default_level, None);
    }
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args, cli.log_format),
        Command::Tools(args) => tools::run(args),
        Command::Call(args) => call::run(args),
        Command::Policy(args) => Ok(policy::run(args)),
        Command::Audit(args) => Ok(audit::run(args)),
        Command::Approvals(args) => approvals::run(args),
        Command::Component(args) => component::run(args),
        Command::Bench(args) => bench::run(args),
        Command::New(args) => new::run(args),
        Command::Fleet(args) => fleet::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(2)
        }
    }
}

/// Installs the log (and, with `traces`, the export of the call spans).
fn init_logging(format: LogFormat, default_level: &str, traces: Option<&Traces>) {
    logging::init(
        format,
        default_level,
        logging::Traces {
            target: crate::telemetry::trace::TARGET,
            layer: traces.map(Traces::layer),
        },
    );
}

/// The error and its causes, skipping a cause whose text the message already contains (many
/// errors quote their source in their own message).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// A multi-threaded tokio runtime for the commands that need one.
fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gatehouse")
        .build()?)
}
