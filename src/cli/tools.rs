//! `gatehouse tools PATH`: the tools and schemas a component yields, as an agent would see them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::HostArgs;
use std::sync::Arc;

use crate::gateway::{Gateway, Tool};
use crate::mcp::describe_tool;
use crate::runtime::ComponentSpec;
use crate::supply::Fetcher;

#[derive(Debug, Args)]
pub struct ToolsArgs {
    /// The component: a file (.wasm), an https:// URL or an oci:// reference.
    pub path: PathBuf,
    /// Print the MCP tool definitions as JSON instead of a readable listing.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub host: HostArgs,
}

pub fn run(args: ToolsArgs) -> anyhow::Result<ExitCode> {
    let config = super::serve::load_config(None, &[args.path.display().to_string()], &args.host)?;
    // Listing runs nothing, so it needs neither policy nor audit log: every tool is shown.
    let runtime = Gateway::runtime_for(&config)?;
    let spec = &config.components[0];
    // A URL or an OCI reference is fetched and checked as the gateway would (no signature is
    // required: listing runs nothing).
    let prepared = spec
        .url
        .as_ref()
        .map(|_| {
            let fetcher = Fetcher::new(&config.supply_chain, config.cache.resolved_dir());
            crate::supply::prepare(spec, &config.supply_chain, &fetcher)
        })
        .transpose()?;
    let path = match &prepared {
        Some(prepared) => prepared.local_path.clone(),
        None => spec.path.clone().unwrap_or_default(),
    };
    let name = spec.name();
    let component = Arc::new(runtime.load(&ComponentSpec {
        name: &name,
        path: &path,
        expected_digest: None,
        exclude: &[],
        prepared: prepared.as_ref(),
    })?);
    let tools: Vec<_> = Tool::all(&component)
        .map(|tool| describe_tool(&tool))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tools)?);
        return Ok(ExitCode::SUCCESS);
    }
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
