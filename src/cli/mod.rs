//! Command-line entry point: argument parsing and dispatch to the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod policy;

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
    /// Test and evaluate Rego policy bundles.
    Policy(policy::PolicyArgs),
}

/// Parses the command line, runs the subcommand and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy(args) => policy::run(args),
    }
}
