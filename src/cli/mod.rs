//! Command-line entry point: argument parsing and dispatch to the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod audit;

/// Gatehouse: serve WebAssembly components to AI agents as MCP tools, behind Rego policies and
/// an append-only audit log.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect, verify and prove the audit log.
    Audit(audit::AuditArgs),
}

/// Parses the command line, runs the subcommand and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Audit(args) => audit::run(args),
    }
}
