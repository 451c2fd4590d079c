//! `gatehouse component verify|inspect|accept|push`: the supply chain from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::{Config, SignatureConfig, SupplyChainConfig};
use crate::supply::oci::OciReference;
use crate::supply::source::Origin;
use crate::supply::{Fetcher, PinStore, Requirement, inspect, signature};

#[derive(Debug, Args)]
pub struct ComponentArgs {
    #[command(subcommand)]
    pub command: ComponentCommand,
}

#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Check a component's signature bundle (`PATH.sigstore.json` unless --bundle).
    Verify(VerifyArgs),
    /// Print what a component imports (the capabilities it asks for) and exports (its tools),
    /// with its digest, size and signature status.
    Inspect(InspectArgs),
    /// Accept the changed definition of a withheld tool (NAME is a tool or a component name);
    /// a running gateway picks the acceptance up from the pin file.
    Accept(AcceptArgs),
    /// Publish a component to an OCI registry as a Wasm artifact (`application/wasm` layer),
    /// with its signature bundle attached as a referrer; prints the digest reference a gateway
    /// should pin.
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component file.
    pub file: PathBuf,
    /// Where to publish it: `oci://REGISTRY/REPOSITORY:TAG`.
    pub reference: String,
    /// The gateway's config, for `[supply_chain]` (ca_file, oci_http_registries, timeout).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The signature bundle to attach (default: FILE.sigstore.json if it exists).
    #[arg(long, value_name = "PATH")]
    pub bundle: Option<PathBuf>,
}

/// The signature requirement, as flags.
#[derive(Debug, Clone, Args)]
pub struct RequirementArgs {
    /// Cosign public key (PEM): key-based verification.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["identity", "issuer", "trust_root"])]
    pub key: Option<PathBuf>,
    /// Required certificate identity (keyless).
    #[arg(long, requires_all = ["issuer", "trust_root"])]
    pub identity: Option<String>,
    /// Required OIDC issuer (keyless).
    #[arg(long, requires = "identity")]
    pub issuer: Option<String>,
    /// Sigstore trusted_root.json (keyless; read from disk, never fetched).
    #[arg(long, value_name = "FILE", requires = "identity")]
    pub trust_root: Option<PathBuf>,
    /// The signature bundle (default: the component path + `.sigstore.json`).
    #[arg(long, value_name = "PATH|URL")]
    pub bundle: Option<String>,
}

impl RequirementArgs {
    fn requirement(&self) -> Option<anyhow::Result<Requirement>> {
        if self.key.is_none() && self.identity.is_none() {
            return None;
        }
        Some(
            Requirement::from_config(&SignatureConfig {
                key: self.key.clone(),
                identity: self.identity.clone(),
                issuer: self.issuer.clone(),
                trust_root: self.trust_root.clone(),
            })
            .map_err(Into::into),
        )
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The component (path, or https:// URL).
    pub path: String,
    #[command(flatten)]
    pub requirement: RequirementArgs,
    /// Also require this digest (`sha256:<hex>`).
    #[arg(long)]
    pub sha256: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component (path, https:// URL or oci:// reference).
    pub path: String,
    #[command(flatten)]
    pub requirement: RequirementArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// A tool name (`echo_echo`) or a component name (`echo`: all its pending tools).
    pub name: String,
    /// The gateway's config, to find its pin file.
    #[arg(long, value_name = "FILE", conflicts_with = "pins")]
    pub config: Option<PathBuf>,
    /// The pin file (default `gatehouse-pins.json` beside the default audit log).
    #[arg(long, value_name = "FILE")]
    pub pins: Option<PathBuf>,
}

pub fn run(args: ComponentArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ComponentCommand::Verify(args) => verify(args),
        ComponentCommand::Inspect(args) => inspect_component(args),
        ComponentCommand::Accept(args) => accept(args),
        ComponentCommand::Push(args) => push(args),
    }
}

fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let reference = OciReference::parse(&args.reference).map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read component {}", args.file.display()))?;
    // Refuse what the gateway would refuse to load, before it is published.
    inspect::world(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a component: {e}", args.file.display()))?;
    let bundle = push_bundle_file(&args)?;
    let supply = match &args.config {
        Some(file) => Config::load(file)?.supply_chain,
        None => SupplyChainConfig::default(),
    };
    let registries = Fetcher::new(&supply, None)
        .registries()
        .map_err(anyhow::Error::msg)?;
    let pushed = registries
        .push(
            &reference,
            &bytes,
            bundle.as_ref().map(|(_, bundle)| bundle.as_slice()),
        )
        .map_err(|e| anyhow::anyhow!("{reference}: {e}"))?;
    let pinned = reference.at_digest(&pushed.manifest_digest);
    println!("pushed {} to {reference}", args.file.display());
    println!(
        "  component digest: {}",
        crate::supply::sha256_digest(&bytes)
    );
    match (&bundle, &pushed.signature_referrer) {
        (Some((path, _)), Some(referrer)) => println!(
            "  signature bundle: {} attached as {referrer}",
            path.display()
        ),
        _ => println!("  signature bundle: none (unsigned)"),
    }
    println!("  pin it as:        {pinned}");
    Ok(ExitCode::SUCCESS)
}

/// The bundle `push` attaches: `--bundle`, which must exist, else FILE.sigstore.json if it
/// does. It must be JSON; whether it verifies is the gateway's check, with its key.
fn push_bundle_file(args: &PushArgs) -> anyhow::Result<Option<(PathBuf, Vec<u8>)>> {
    let path = match &args.bundle {
        Some(path) => path.clone(),
        None => {
            let mut sibling = args.file.as_os_str().to_owned();
            sibling.push(".sigstore.json");
            let sibling = PathBuf::from(sibling);
            if !sibling.is_file() {
                return Ok(None);
            }
            sibling
        }
    };
    let bundle = std::fs::read(&path)
        .with_context(|| format!("cannot read signature bundle {}", path.display()))?;
    serde_json::from_slice::<serde_json::Value>(&bundle)
        .ok()
        .filter(serde_json::Value::is_object)
        .with_context(|| format!("{} is not a sigstore bundle (JSON)", path.display()))?;
    Ok(Some((path, bundle)))
}

fn fetch(path: &str, sha256: Option<&str>) -> anyhow::Result<(Origin, crate::supply::Fetched)> {
    let origin = Origin::parse(path).map_err(anyhow::Error::msg)?;
    let fetcher = Fetcher::new(&SupplyChainConfig::default(), None);
    let fetched = fetcher.fetch(&origin, sha256)?;
    Ok((origin, fetched))
}

/// The origin of `fetched`'s signature bundle: `--bundle`, else beside it.
fn bundle_origin(
    origin: &Origin,
    fetched: &crate::supply::Fetched,
    args: &RequirementArgs,
) -> Result<Origin, String> {
    let component = crate::config::ComponentConfig {
        bundle: args.bundle.clone(),
        ..Default::default()
    };
    Origin::bundle_of(&component, origin, fetched.resolved.as_deref())
}

/// Checks the signature; `Ok(None)` when no requirement was given.
fn check_signature(
    origin: &Origin,
    fetched: &crate::supply::Fetched,
    args: &RequirementArgs,
) -> anyhow::Result<Option<Result<signature::Signer, signature::SignatureError>>> {
    let Some(requirement) = args.requirement() else {
        return Ok(None);
    };
    let requirement = requirement?;
    let fetcher = Fetcher::new(&SupplyChainConfig::default(), None);
    Ok(Some(
        fetcher
            .fetch_bundles(&bundle_origin(origin, fetched, args))
            .and_then(|bundles| signature::verify_any(&fetched.bytes, &bundles, &requirement)),
    ))
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (origin, fetched) = fetch(&args.path, args.sha256.as_deref())?;
    match check_signature(&origin, &fetched, &args.requirement)? {
        None => anyhow::bail!("give --key FILE, or --identity, --issuer and --trust-root"),
        Some(Ok(signer)) => {
            println!(
                "verified: {origin} ({}) is signed by {signer}",
                fetched.digest
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(error)) => {
            eprintln!("gatehouse: {origin}: refused: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn inspect_component(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (origin, fetched) = fetch(&args.path, None)?;
    let world = inspect::world(&fetched.bytes).map_err(anyhow::Error::msg)?;
    let bundle_origin = bundle_origin(&origin, &fetched, &args.requirement);
    let signature = match check_signature(&origin, &fetched, &args.requirement)? {
        Some(Ok(signer)) => format!("verified: signed by {signer}"),
        Some(Err(error)) => format!("NOT verified: {error}"),
        None => match &bundle_origin {
            Ok(Origin::File(path)) if path.is_file() => format!(
                "bundle present ({}), not checked: give --key or --identity/--issuer/--trust-root",
                path.display()
            ),
            Ok(Origin::File(path)) => format!("unsigned: no bundle at {}", path.display()),
            _ => "not checked: give --key or --identity/--issuer/--trust-root".to_owned(),
        },
    };
    if args.json {
        let report = serde_json::json!({
            "source": origin.to_string(),
            "resolved": fetched.resolved,
            "digest": fetched.digest,
            "size_bytes": fetched.bytes.len(),
            "signature": signature,
            "world": world,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("component {origin}");
    if let Some(resolved) = &fetched.resolved {
        println!("  resolved:  {resolved}");
    }
    println!("  digest:    {}", fetched.digest);
    println!("  size:      {} bytes", fetched.bytes.len());
    println!("  signature: {signature}");
    println!("  world:     {}", world.world);
    println!("\nimports (capabilities it asks for):");
    if world.imports.is_empty() {
        println!("  none");
    }
    for import in &world.imports {
        println!("  {:<48} {}", import.name, import.capability);
    }
    let used = world.imports.iter().filter(|i| i.in_contract).count();
    println!(
        "\ncontract (wit/, gatehouse:tool/tool): uses {used} of its {} interfaces",
        inspect::CONTRACT_INTERFACES.len()
    );
    for import in world.imports.iter().filter(|i| !i.in_contract) {
        println!("  NOT in the contract, loading will fail: {}", import.name);
    }
    println!("\nexports (candidate tools):");
    for export in &world.exports {
        match &export.docs {
            Some(docs) => println!(
                "  {} — {}",
                export.name,
                docs.lines().next().unwrap_or_default()
            ),
            None => println!("  {}", export.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn accept(args: AcceptArgs) -> anyhow::Result<ExitCode> {
    let pins = match (&args.pins, &args.config) {
        (Some(pins), _) => pins.clone(),
        (None, Some(config)) => Config::load(config)?.pins_path(),
        (None, None) => Config::default().pins_path(),
    };
    let store = PinStore::new(pins);
    let accepted = store
        .accept(&args.name)
        .with_context(|| format!("cannot accept {:?}", args.name))?;
    for (tool, pin) in &accepted {
        println!("accepted {tool}: {}", pin.definition);
    }
    println!(
        "a running gateway offers the tool again once it sees {} change",
        store.path().display()
    );
    Ok(ExitCode::SUCCESS)
}
