//! `gatehouse policy test`, `eval`, `replay` and `build`: the Rego workbench.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use crate::config::SupplyChainConfig;
use crate::policy::test_runner::{self, TestOptions};
use crate::policy::{
    BundleSource, DEFAULT_POLICY_DIR, Evaluator, Phase, PolicyOptions, PolicyStore,
};
use crate::supply::Fetcher;
use crate::supply::oci::OciReference;

/// Test and evaluate policy bundles.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the bundle's tests (`test_*` rules; `todo_*` rules are skipped), like `opa test`.
    Test(TestArgs),
    /// Decide one input and print the decision as JSON.
    Eval(EvalArgs),
    /// Decide the decisions recorded in an audit log again with another bundle and report
    /// those that would change (allow→deny, deny→allow, other reasons), with counts by tool
    /// and caller. The log is opened read-only.
    Replay(super::replay::ReplayArgs),
    /// Make the archive a fleet pulls (`[policy] bundle_url`): a reproducible .tar.gz of the
    /// bundle, only if it compiles and its tests pass, signed when given a key.
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The archive to write (e.g. bundle.tar.gz).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Cosign private key (PEM) to sign the archive with; the sigstore bundle is written to
    /// OUTPUT.sigstore.json. An encrypted cosign key's password is read from COSIGN_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Also publish the archive (and its signature, attached as a referrer) to an OCI
    /// registry: `oci://REGISTRY/REPOSITORY:TAG`.
    #[arg(long, value_name = "REFERENCE")]
    pub push: Option<String>,
    /// The gateway's config, for `[supply_chain]` when pushing (ca_file, oci_http_registries,
    /// timeout).
    #[arg(long, value_name = "FILE", requires = "push")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The bundle directory.
    #[arg(default_value = DEFAULT_POLICY_DIR)]
    pub dir: PathBuf,
    /// Extra data file (JSON or YAML) merged over the bundle's data, in order.
    #[arg(long = "policy-data", value_name = "FILE")]
    pub policy_data: Vec<PathBuf>,
    /// Show print() output of each test and where failing tests stopped.
    #[arg(short, long)]
    pub verbose: bool,
    /// Report covered and uncovered lines of each policy file.
    #[arg(long)]
    pub coverage: bool,
    /// Only run tests whose full name (data.pkg.test_x) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub run: Option<String>,
    /// Time budget of each test, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The phase to decide.
    #[arg(long)]
    pub phase: Phase,
    /// The input document (JSON); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The bundle directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_POLICY_DIR)]
    pub policies: PathBuf,
    /// Extra data file (JSON or YAML) merged over the bundle's data, in order.
    #[arg(long = "policy-data", value_name = "FILE")]
    pub policy_data: Vec<PathBuf>,
    /// Also print every rule value of the phase package, print() output and evaluated lines.
    #[arg(long)]
    pub explain: bool,
    /// Time budget of the decision, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub timeout_ms: u64,
    /// The evaluator that decides (as the gateway's `policy.evaluator`).
    #[arg(long, value_enum, default_value_t = Evaluator::Interpreter)]
    pub evaluator: Evaluator,
}
/// Runs a `policy` subcommand. Exit codes: 0 success, 1 a test failed (or, with `replay
/// --fail-on-change`, a decision would change), 2 the bundle, the input or the log could not
/// be loaded.
pub fn run(args: PolicyArgs) -> ExitCode {
    let outcome = match args.command {
        PolicyCommand::Test(args) => test(args),
        PolicyCommand::Eval(args) => eval(args),
        PolicyCommand::Replay(args) => super::replay::run(args),
        PolicyCommand::Build(args) => build(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // Each cause once: a bundle's errors quote their source in their own message.
            eprintln!("error: {}", super::describe(&error));
            ExitCode::from(2)
        }
    }
}

fn build(args: BuildArgs) -> Result<ExitCode> {
    // The gate a gateway applies before serving it: it parses, compiles and passes its tests.
    let store = PolicyStore::load(&args.dir, &[], PolicyOptions::default()).with_context(|| {
        format!(
            "{}: not building a bundle that would be refused",
            args.dir.display()
        )
    })?;
    let files = BundleSource::files(&args.dir)?;
    let archive = crate::supply::policy_bundle::pack(&files)?;
    let signature = args
        .key
        .as_ref()
        .map(|key| {
            let pem = std::fs::read(key)
                .with_context(|| format!("cannot read signing key {}", key.display()))?;
            let password = String::from_utf8_lossy(&pem)
                .contains("ENCRYPTED")
                .then(|| std::env::var("COSIGN_PASSWORD").unwrap_or_default());
            crate::supply::signature::sign_with_key(
                &archive,
                &pem,
                password.as_deref().map(str::as_bytes),
            )
            .with_context(|| format!("cannot sign with {}", key.display()))
        })
        .transpose()?;
    write_file(&args.output, &archive)?;
    println!("built {}", args.output.display());
    println!("  files:    {}", files.len());
    println!(
        "  revision: {} (what every verdict records)",
        store.revision()
    );
    println!("  digest:   {}", crate::supply::sha256_digest(&archive));
    if let Some(signature) = &signature {
        let mut path = args.output.clone().into_os_string();
        path.push(".sigstore.json");
        let path = PathBuf::from(path);
        write_file(&path, signature)?;
        println!("  signed:   {}", path.display());
    }
    if let Some(reference) = &args.push {
        let supply = match &args.config {
            Some(file) => crate::config::Config::load(file)?.supply_chain,
            None => SupplyChainConfig::default(),
        };
        let pushed = push(&supply, reference, &archive, signature.as_deref())?;
        println!("  pushed:   {pushed}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes a built archive to `reference`, its signature attached; returns the digest
/// reference (what a gateway can pin).
fn push(
    supply: &SupplyChainConfig,
    reference: &str,
    archive: &[u8],
    signature: Option<&[u8]>,
) -> Result<String> {
    use crate::supply::policy_bundle::{BUNDLE_CONFIG, BUNDLE_LAYER};
    let reference = OciReference::parse(reference).map_err(anyhow::Error::msg)?;
    let registries = Fetcher::new(supply, None)
        .registries()
        .map_err(anyhow::Error::msg)?;
    let pushed = registries
        .push_artifact(&reference, archive, BUNDLE_LAYER, BUNDLE_CONFIG, signature)
        .map_err(|e| anyhow::anyhow!("{reference}: {e}"))?;
    let pinned = reference.at_digest(&pushed.manifest_digest);
    Ok(pinned.to_string())
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed over it).
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn test(args: TestArgs) -> Result<ExitCode> {
    let run = args
        .run
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("bad --run pattern")?;
    let source = BundleSource::read(&args.dir, &args.policy_data)?;
    let report = test_runner::run(
        &source,
        &TestOptions {
            run,
            coverage: args.coverage,
            verbose: args.verbose,
            time_budget: Duration::from_millis(args.timeout_ms),
        },
    )?;
    for warning in &report.warnings {
        eprintln!(
            "warning: {warning} (the tests still run; `gatehouse serve` refuses this bundle)"
        );
    }
    emit(&report.render(args.verbose));
    Ok(if report.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn eval(args: EvalArgs) -> Result<ExitCode> {
    let text = if args.input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the input from standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?
    };
    let input: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.input.display()))?;
    let store = load_candidate(
        &args.policies,
        &args.policy_data,
        args.timeout_ms,
        args.evaluator,
    )?;
    let output = if args.explain {
        let (decision, explanation) = store.explain(args.phase, &input);
        let mut value = serde_json::to_value(&decision)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("explain".into(), serde_json::to_value(&explanation)?);
        }
        value
    } else {
        serde_json::to_value(store.decide(args.phase, &input))?
    };
    emit(&format!("{}\n", serde_json::to_string_pretty(&output)?));
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
/// A bundle loaded to try, not to serve (`policy eval`, `policy replay`): it may be in the
/// middle of an edit, so its own tests are `policy test`'s job, not required here.
pub(super) fn load_candidate(
    dir: &std::path::Path,
    data: &[PathBuf],
    timeout_ms: u64,
    evaluator: Evaluator,
) -> Result<PolicyStore> {
    Ok(PolicyStore::load(
        dir,
        data,
        PolicyOptions {
            time_budget: Duration::from_millis(timeout_ms),
            run_tests: false,
            evaluator,
            ..PolicyOptions::default()
        },
    )?)
}

fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
