//! `gatehouse tools PATH`: the tools and schemas a component yields, as an agent would see them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::HostArgs;
use crate::gateway::Gateway;
use crate::identity::{Caller, Transport};
use crate::mcp::describe_tool;

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// The component file (.wasm).
    pub path: PathBuf,
    /// Print the MCP tool definitions as JSON instead of a readable listing.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

pub fn run(args: ToolsArgs) -> anyhow::Result<ExitCode> {
    let config = super::serve::load_config(None, &[args.path.display().to_string()], &args.host)?;
    let gateway = Gateway::from_config(&config)?;
    let caller = Caller {
        principal: "local".into(),
        authenticated: true,
        transport: Transport::Cli,
        client: None,
    };
    let tools: Vec<_> = gateway.tools(&caller).map(describe_tool).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tools)?);
        return Ok(ExitCode::SUCCESS);
    }
    let component = &gateway.components()[0];
    println!(
        "{} — {} ({} bytes)",
        component.name, component.digest, component.size_bytes
    );
    for tool in &tools {
        println!("\n{}", tool.name);
        if let Some(description) = &tool.description {
            for line in description.lines() {
                println!("  {line}");
            }
        }
        println!(
            "  input schema:\n{}",
            indent(&serde_json::to_string_pretty(&*tool.input_schema)?)
        );
        if let Some(output) = &tool.output_schema {
            println!(
                "  output schema:\n{}",
                indent(&serde_json::to_string_pretty(&**output)?)
            );
        }
    }
    for skipped in &component.skipped {
        println!("\nnot offered: {} — {}", skipped.name, skipped.reason);
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
