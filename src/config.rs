//! The `gatehouse.toml` file and the command-line flags that extend it.
//!
//! Each section's settings belong to the module they configure, with that module's one
//! `Default`: `[audit]` to [`crate::audit`], `[supply_chain]` and the signature requirements to
//! [`crate::supply`], `[http]` and `[[mounts]]` to [`crate::host`], `[policy]` to
//! [`crate::policy`], `[auth]` to [`crate::auth`], `[cache]` to [`crate::runtime::cache`],
//! `[metrics]` and `[telemetry]` to [`crate::telemetry`], `[approvals]` to [`crate::approval`],
//! `[ui]` to [`crate::ui`].
//! They are re-exported here, where [`Config`] combines them. This file owns only what belongs
//! to no one module below it: the listener (`[server]`), the component list, the per-call
//! `[limits]` that the gateway, the runtime and the transports share, the API keys, the `[env]`
//! table, and loading the file. `[secrets]` belongs to [`crate::secrets`].
//!
//! Relative paths in a config file are resolved against the file's own directory, so a config
//! works the same whatever directory the gateway is started from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::approval::ApprovalSettings;
pub use crate::audit::AuditLogConfig;
pub use crate::auth::{ApiKeyConfig, AuthSettings, JwtSettings};
pub use crate::fleet::FleetSettings;
pub use crate::host::config::ComponentSettings;
pub use crate::host::fs::MountConfig;
pub use crate::host::http::HttpConfig;
pub use crate::policy::PolicyConfig;
pub use crate::runtime::cache::CacheConfig;
pub use crate::secrets::{SecretSource, SecretsConfig};
use crate::supply::ComponentSource;
pub use crate::supply::{DriftAction, SignatureConfig, SupplyChainConfig, SupplyMode};
pub use crate::telemetry::{MetricsSettings, TelemetrySettings};
pub use crate::ui::UiSettings;

/// Everything the gateway needs to start, after the config file and the flags are merged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub components: Vec<ComponentConfig>,
    pub mounts: Vec<MountConfig>,
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    pub cache: CacheConfig,
    pub api_keys: Vec<ApiKeyConfig>,
    pub auth: AuthSettings,
    pub policy: PolicyConfig,
    pub audit: AuditLogConfig,
    pub supply_chain: SupplyChainConfig,
    pub metrics: MetricsSettings,
    pub telemetry: TelemetrySettings,
    /// Human approval of `ask` decisions: where questions wait, how long.
    pub approvals: ApprovalSettings,
    /// The auditor's web view at `/ui/`; off unless it names an auditor or operator.
    pub ui: UiSettings,
    /// Environment variables that may be granted to tools: by a component's `env` list, or
    /// per call by the policy's `env` obligation. A tool sees no other variable.
    pub env: std::collections::BTreeMap<String, String>,
    /// Credentials the gateway holds for tools and injects into the requests the policy
    /// allows (`[secrets.NAME] env = "VAR"` or `file = "path"`); never given to a tool.
    pub secrets: SecretsConfig,
    /// `[fleet]`: this gateway's id and the PostgreSQL store its audit log is shipped to.
    pub fleet: FleetSettings,
}

/// How the gateway listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Streamable HTTP listener (`127.0.0.1:8787`); without it the gateway speaks MCP on stdio.
    pub http: Option<SocketAddr>,
    /// Extra `Host` names the HTTP listener accepts besides its own address and `localhost`
    /// (DNS-rebinding protection: anything else is refused).
    pub allowed_hosts: Vec<String>,
    /// Principal given to the single client on stdio (the process that started us).
    pub stdio_principal: String,
    /// Whether HTTP requests without an API key or JWT are served as principal `anonymous`.
    pub allow_anonymous: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: None,
            allowed_hosts: Vec::new(),
            stdio_principal: "local".to_owned(),
            allow_anonymous: true,
        }
    }
}

/// One component served as tools.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentConfig {
    /// Prefix of the component's tool names; defaults to the file name without extension.
    pub name: Option<String>,
    /// A local component file. Exactly one of `path` and `url` is given.
    pub path: Option<PathBuf>,
    /// An `https://` URL the component is downloaded from at load (`http://` only to a loopback
    /// address, for tests and local mirrors).
    pub url: Option<String>,
    /// Expected `sha256:<hex>` digest; a mismatch refuses the load.
    pub sha256: Option<String>,
    /// The signature this component must carry; overrides `[supply_chain.signature]`.
    pub signature: Option<SignatureConfig>,
    /// The sigstore bundle (path or URL); default: the component's path or URL plus
    /// `.sigstore.json`.
    pub bundle: Option<String>,
    /// Exported function names that are not offered as tools (toolchain entry points, helpers).
    pub exclude: Vec<String>,
    /// Keys of the top-level `[env]` table this component always gets.
    pub env: Vec<String>,
    /// Non-secret settings the component reads through `wasi:config/store`, each read decided
    /// by the policy (phase `config`). Values are strings; never put a secret here.
    pub config: ComponentSettings,
}

impl ComponentConfig {
    /// A component given by its file, with everything else default (the `--component` flag).
    pub fn from_path(name: Option<String>, path: PathBuf) -> Self {
        ComponentConfig {
            name,
            path: Some(path),
            ..Default::default()
        }
    }

    /// A component given on the command line: a URL (`https://`, `oci://`, …) if it has a
    /// scheme, else a path.
    pub fn from_location(name: Option<String>, location: &str) -> Self {
        if location.contains("://") {
            ComponentConfig {
                name,
                url: Some(location.to_owned()),
                ..Default::default()
            }
        } else {
            ComponentConfig::from_path(name, PathBuf::from(location))
        }
    }

    /// The component's name: as given, else from its file (or URL) name; for an OCI reference,
    /// its repository's last segment (`oci://ghcr.io/acme/echo:1.0` is `echo`).
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let location = self.location();
            let last = location.rsplit('/').next().unwrap_or(&location);
            let last = if location.starts_with("oci://") {
                last.split(['@', ':']).next().unwrap_or(last)
            } else {
                last
            };
            crate::runtime::component::default_component_name(Path::new(last))
        })
    }

    /// Where the component comes from, as written (path or URL), for names and messages.
    pub fn location(&self) -> String {
        ComponentSource::from(self).location()
    }
}

/// The supply chain's part of a declaration.
impl<'a> From<&'a ComponentConfig> for ComponentSource<'a> {
    fn from(component: &'a ComponentConfig) -> Self {
        ComponentSource {
            path: component.path.as_deref(),
            url: component.url.as_deref(),
            sha256: component.sha256.as_deref(),
            signature: component.signature.as_ref(),
            bundle: component.bundle.as_deref(),
        }
    }
}

impl Config {
    /// The tool-definition pin file: as configured, else beside the audit log.
    pub fn pins_path(&self) -> PathBuf {
        self.supply_chain.pins_path(&self.audit.path())
    }
}

/// Per-call sandbox limits (defaults; a policy decision may tighten them later).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub max_result_bytes: u64,
    /// Largest arguments object accepted from an agent, in bytes of JSON; the transports
    /// refuse larger requests (HTTP body, stdio line) before they are parsed.
    pub max_argument_bytes: u64,
    /// Calls running at once across all components; further calls wait for a slot.
    pub max_concurrent_calls: u32,
    /// Calls one component may run at once; a call beyond it fails at once with a clear
    /// error, so one busy tool cannot take every slot.
    pub max_concurrent_per_component: u32,
    /// Calls one principal may start in any 60 s (a sliding window); a call beyond it fails at
    /// once naming this limit, so one caller cannot take the gateway from the others. A
    /// policy's `calls_per_minute` obligation tightens it per call. 0 (the default): no rate
    /// limit. All anonymous callers are one principal and share one window.
    pub calls_per_minute_per_principal: u64,
    /// Calls one principal may run at once; a call beyond it fails at once. 0 (the default):
    /// no limit beyond `max_concurrent_calls`.
    pub max_concurrent_per_principal: u32,
    /// Fuel a call may burn: about one unit per wasm operation, so a tight loop burns several
    /// billion a second. The default is far above what the time limit lets a call use; a
    /// policy's `fuel` obligation tightens it per call. 0 turns fuel metering off, and then a
    /// policy that asks for a fuel limit denies the call rather than run it unmetered.
    pub fuel: u64,
    /// Outgoing HTTP requests one call may make.
    pub max_requests: u64,
    /// Decisions of a session that every later decision's input carries
    /// (`input.session.history`, the most recent last); at most 1024, 0 keeps none. Labels
    /// are kept whatever this says.
    pub session_history: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            timeout_ms: 10_000,
            memory_bytes: 256 << 20,
            max_result_bytes: 4 << 20,
            max_argument_bytes: 1 << 20,
            max_concurrent_calls: 64,
            max_concurrent_per_component: 32,
            calls_per_minute_per_principal: 0,
            max_concurrent_per_principal: 0,
            fuel: 1_000_000_000_000,
            max_requests: 64,
            session_history: 64,
        }
    }
}

impl LimitsConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    /// Reads a `gatehouse.toml`, resolving its relative paths against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_relative_to(base);
        Ok(config)
    }

    fn resolve_relative_to(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for component in &mut self.components {
            if let Some(path) = &mut component.path {
                resolve(path);
            }
            if let Some(bundle) = &mut component.bundle
                && !bundle.contains("://")
                && Path::new(bundle.as_str()).is_relative()
            {
                *bundle = base.join(bundle.as_str()).display().to_string();
            }
        }
        let signatures = self.components.iter_mut().map(|c| &mut c.signature);
        for signature in signatures
            .chain([&mut self.supply_chain.signature])
            .flatten()
        {
            [&mut signature.key, &mut signature.trust_root]
                .into_iter()
                .flatten()
                .for_each(resolve);
        }
        for mount in &mut self.mounts {
            resolve(&mut mount.host);
        }
        if let Some(dir) = &mut self.cache.dir {
            resolve(dir);
        }
        if let Some(jwt) = &mut self.auth.jwt {
            [&mut jwt.jwks_file, &mut jwt.jwks_ca_file]
                .into_iter()
                .flatten()
                .for_each(resolve);
        }
        for file in self.secrets.values_mut().filter_map(|s| s.file.as_mut()) {
            resolve(file);
        }
        if let Some(file) = self.fleet.password.as_mut().and_then(|s| s.file.as_mut()) {
            resolve(file);
        }
        if let Some(file) = &mut self.fleet.ca_file {
            resolve(file);
        }
        // Unset paths keep their defaults in the working directory, where the operator runs us.
        self.policy.data.iter_mut().for_each(resolve);
        for path in [
            &mut self.policy.dir,
            &mut self.policy.bundle_ca,
            &mut self.policy.bundle_state_dir,
            &mut self.audit.path,
            &mut self.audit.signing_key,
            &mut self.audit.key_dir,
            &mut self.audit.checkpoint_file,
            &mut self.approvals.path,
            &mut self.supply_chain.pins,
            &mut self.supply_chain.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            resolve(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs_follow_wasmtime_convention() {
        let m: MountConfig = "/data::/in".parse().unwrap();
        assert_eq!(
            (m.host.to_str(), m.guest.as_str(), m.writable),
            (Some("/data"), "/in", false)
        );
        let m: MountConfig = "./out::/out::rw".parse().unwrap();
        assert!(m.writable);
        let m: MountConfig = "/same".parse().unwrap();
        assert_eq!(m.guest, "/same");
        assert!(
            "/a::/b::rx"
                .parse::<MountConfig>()
                .unwrap_err()
                .contains("unknown mode")
        );
        assert!("::/b".parse::<MountConfig>().is_err());
    }

    #[test]
    fn config_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gatehouse.toml");
        std::fs::write(
            &file,
            r#"
            [server]
            http = "127.0.0.1:8787"
            [[components]]
            path = "c/types.wasm"
            [[mounts]]
            host = "data"
            guest = "/data"
            writable = true
            [limits]
            timeout_ms = 500
            [audit]
            key_dir = "state"
            "#,
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(config.audit.key_dir, Some(dir.path().join("state")));
        assert_eq!(
            config.components[0].path,
            Some(dir.path().join("c/types.wasm"))
        );
        assert_eq!(config.mounts[0].host, dir.path().join("data"));
        assert_eq!(config.limits.timeout_ms, 500);
        assert_eq!(config.limits.memory_bytes, 256 << 20);
    }

    #[test]
    fn audit_durability_is_full_unless_the_file_says_normal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gatehouse.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(&file)
        };
        use crate::audit::Synchronous;
        assert_eq!(load("").unwrap().audit.synchronous, Synchronous::Full);
        let normal = load("[audit]\nsynchronous = \"normal\"\n").unwrap();
        assert_eq!(normal.audit.synchronous, Synchronous::Normal);
        let err = load("[audit]\nsynchronous = \"off\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `off`"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gatehouse.toml");
        std::fs::write(&file, "[limits]\ntimeout = 5\n").unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field `timeout`"), "{err}");
    }

    /// Every key `gatehouse.toml` accepts, each set away from its default.
    const EVERY_KEY: &str = r#"
        [server]
        http = "127.0.0.1:9000"
        allowed_hosts = ["gate.example"]
        stdio_principal = "me"
        allow_anonymous = false

        [[components]]
        name = "local"
        path = "c/local.wasm"
        sha256 = "sha256:00"
        signature = { key = "k.pub" }
        bundle = "b.json"
        exclude = ["helper"]
        env = ["TOKEN"]
        config = { greeting = "hi", region = "eu" }

        [[components]]
        url = "https://example.com/c.wasm"
        signature = { identity = "me@example.com", issuer = "https://issuer", trust_root = "root.json" }
        bundle = "https://example.com/c.wasm.bundle"

        [[mounts]]
        host = "data"
        guest = "/data"
        writable = true

        [http]
        connect_timeout_ms = 1
        first_byte_timeout_ms = 2
        between_bytes_timeout_ms = 3
        max_response_bytes = 4
        masked_headers = ["x-secret"]
        unmasked_query_parameters = ["page"]

        [limits]
        timeout_ms = 5
        memory_bytes = 6
        max_result_bytes = 7
        max_argument_bytes = 8
        max_concurrent_calls = 9
        max_concurrent_per_component = 10
        calls_per_minute_per_principal = 11
        max_concurrent_per_principal = 12
        fuel = 13
        max_requests = 14
        session_history = 32

        [cache]
        dir = "cache"

        [[api_keys]]
        principal = "ci"
        key_sha256 = "ab"

        [auth.jwt]
        jwks_file = "keys/jwks.json"
        jwks_url = "https://idp.example/.well-known/jwks.json"
        jwks_ca_file = "keys/idp-ca.pem"
        jwks_refresh_seconds = 60
        issuer = "https://idp.example"
        audience = "gatehouse"
        principal_claim = "email"
        algorithms = ["ES256"]
        leeway_seconds = 5

        [policy]
        dir = "p"
        data = ["d.json"]
        evaluator = "compiled"
        bundle_url = "https://policy.example/bundle.tar.gz"
        bundle_poll_secs = 30
        bundle_ca = "policy-ca.pem"
        bundle_state_dir = "policy-state"

        [audit]
        path = "a.db"
        signing_key = "s.key"
        key_dir = "state"
        checkpoint_file = "a.cp"
        checkpoint_every = 15
        checkpoint_interval_secs = 16
        synchronous = "normal"

        [supply_chain]
        mode = "strict"
        signature = { key = "all.pub" }
        pins = "pins.json"
        on_drift = "allow"
        max_download_bytes = 17
        download_timeout_secs = 18
        ca_file = "ca.pem"
        oci_http_registries = ["registry.internal:5000"]

        [metrics]
        enabled = false
        listen = "127.0.0.1:9464"
        auth = true

        [telemetry]
        otlp_endpoint = "http://127.0.0.1:4318"
        max_queued_spans = 19

        [approvals]
        path = "approvals.db"
        timeout_secs = 20
        park_minutes = 21
        max_minutes = 22

        [ui]
        auditors = ["alice"]
        operators = ["olga"]

        [env]
        TOKEN = "t"

        [secrets.github]
        env = "GITHUB_TOKEN"

        [secrets.saas]
        file = "secrets/saas"

        [fleet]
        gateway_id = "gw-1"
        postgres = "postgres://gw1@db.example:5432/audit?sslmode=require"
        password = { file = "secrets/pg" }
        ca_file = "pg-ca.pem"
        require_shipped = true
        ship_timeout_ms = 500
        batch = 100
        poll_ms = 50
    "#;

    /// A config as text (`Debug`), with the directory it was loaded from written `$DIR`.
    fn snapshot(config: &Config, dir: &Path) -> String {
        format!("{config:#?}\n").replace(&dir.display().to_string(), "$DIR")
    }

    fn parsed(dir: &Path, text: &str) -> String {
        let file = dir.join("gatehouse.toml");
        std::fs::write(&file, text).unwrap();
        snapshot(&Config::load(&file).unwrap(), dir)
    }

    /// Each section's defaults and how every key parses stay exactly as recorded: moving a
    /// settings type between modules must not change what a `gatehouse.toml` means.
    #[test]
    fn every_key_and_every_default_parse_as_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = include_str!("config/snapshots/default.txt");
        assert_eq!(snapshot(&Config::default(), dir.path()), defaults);
        assert_eq!(parsed(dir.path(), ""), defaults);
        assert_eq!(
            parsed(dir.path(), EVERY_KEY),
            include_str!("config/snapshots/every-key.txt")
        );
    }

    /// The shipped example (`scripts/serve` serves it) means what it meant.
    #[test]
    fn the_example_config_parses_as_recorded() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let config = Config::load(&examples.join("gatehouse.toml")).unwrap();
        assert_eq!(
            snapshot(&config, &examples),
            include_str!("config/snapshots/example.txt")
        );
    }

    /// A misspelt key is an error in every section, so no setting is silently ignored (a
    /// `#[serde(flatten)]` would lose this: serde cannot deny unknown fields through one).
    #[test]
    fn unknown_keys_are_errors_in_every_section() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gatehouse.toml");
        for section in [
            "[server]",
            "[[components]]\npath = \"c.wasm\"",
            "[[components]]\npath = \"c.wasm\"\n[components.signature]",
            "[[mounts]]\nhost = \"h\"\nguest = \"/g\"",
            "[http]",
            "[limits]",
            "[cache]",
            "[[api_keys]]\nprincipal = \"p\"\nkey_sha256 = \"k\"",
            "[auth]",
            "[auth.jwt]",
            "[policy]",
            "[audit]",
            "[supply_chain]",
            "[supply_chain.signature]",
            "[secrets.github]\nenv = \"X\"",
            "[metrics]",
            "[telemetry]",
            "[ui]",
            "[fleet]",
            "[fleet.password]",
        ] {
            std::fs::write(&file, format!("{section}\nmisspelt = 1\n")).unwrap();
            let err = Config::load(&file).unwrap_err().to_string();
            assert!(err.contains("unknown field `misspelt`"), "{section}: {err}");
        }
    }
}
