//! The tools being served and where they came from: every component is loaded through the
//! supply-chain checks (digest, signature), its tools' definitions checked against their pins
//! (drift withholds a tool until an operator accepts it), and the environment it is granted
//! fixed. The set is replaced as a whole on reload; a call holds the version it started with.
//! Every load, refusal, pin, drift and acceptance is an audit entry (phase `supply`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde_json::{Map, Value};

use super::GatewayError;
use crate::audit::{AuditLog, NewEntry};
use crate::config::{ComponentConfig, ComponentSettings, DriftAction, SupplyChainConfig};
use crate::policy::input::ToolDoc;
use crate::runtime::{ComponentSpec, ExportedFunction, LoadedComponent, Runtime};
use crate::supply::Fetcher;
use crate::supply::pins::{PinCheck, PinStore, definition_hash};

/// A tool: one exported function of one loaded component.
#[derive(Clone)]
pub struct Tool {
    pub component: Arc<LoadedComponent>,
    index: usize,
    /// Its definition differs from the pinned one and `on_drift = "allow"` offered it anyway
    /// (`input.tool.definition_changed`).
    pub definition_changed: bool,
}

/// What an agent is shown for a tool, in MCP's shape (`tools/list`) but without MCP's types,
/// which `mcp` maps it to. Its JSON is what a definition pin hashes, so a field added here
/// changes every pin: the hashes are guarded by a test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDefinition {
    pub name: String,
    pub title: String,
    pub description: String,
    pub input_schema: Arc<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Arc<Map<String, Value>>>,
    pub annotations: ToolHints,
}

/// MCP's tool annotations that Gatehouse can state from the component itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolHints {
    /// The component imports `wasi:http` or `wasi:sockets`: it can reach beyond the host.
    pub open_world_hint: bool,
}

impl Tool {
    /// Every tool of a component.
    pub fn all(component: &Arc<LoadedComponent>) -> impl Iterator<Item = Tool> + '_ {
        (0..component.functions.len()).map(|index| Tool {
            component: component.clone(),
            index,
            definition_changed: false,
        })
    }

    /// The tool's name, WIT docs, schemas, and where it comes from.
    pub fn describe(&self) -> ToolDefinition {
        let function = self.function();
        let component = &self.component;
        let origin = match &function.interface {
            Some(interface) => format!("`{interface}#{}`", function.function),
            None => format!("`{}`", function.function),
        };
        let description = match &function.signature.docs {
            Some(docs) => format!(
                "{docs}\n\n(WebAssembly component `{}`, export {origin})",
                component.name
            ),
            None => format!(
                "Export {origin} of the WebAssembly component `{}`.",
                component.name
            ),
        };
        ToolDefinition {
            name: self.name().to_owned(),
            title: format!("{}: {}", component.name, function.function),
            description,
            input_schema: function.input_schema.clone(),
            output_schema: function.output_schema.clone(),
            annotations: ToolHints {
                open_world_hint: reaches_network(component),
            },
        }
    }

    /// The definition as JSON: what a definition pin covers.
    pub fn definition(&self) -> Value {
        serde_json::to_value(self.describe()).unwrap_or_default()
    }

    /// The `input.tool` document of the policy contract (policies/README.md).
    pub fn policy_doc(&self) -> ToolDoc<'_> {
        let function = self.function();
        let provenance = &self.component.provenance;
        ToolDoc {
            name: self.name(),
            function: &function.function,
            interface: function.interface.as_deref(),
            component_name: &self.component.name,
            component_digest: &self.component.digest,
            component_source: provenance.source.as_str().into(),
            component_signed: provenance.signed,
            component_signer: serde_json::to_value(&provenance.signer).unwrap_or(Value::Null),
            definition_changed: self.definition_changed,
        }
    }

    pub fn function(&self) -> &ExportedFunction {
        &self.component.functions[self.index]
    }

    pub fn name(&self) -> &str {
        &self.function().tool_name
    }
}

/// Whether a component can reach beyond the host (MCP's `openWorldHint`).
fn reaches_network(component: &LoadedComponent) -> bool {
    component
        .imports
        .iter()
        .any(|import| import.starts_with("wasi:http/") || import.starts_with("wasi:sockets/"))
}

/// The components and tools being served at one moment. Replaced as a whole on reload; a
/// call holds the `Arc` it started with, so it finishes on the version it began on.
#[derive(Default)]
pub struct Catalog {
    pub components: Vec<Arc<LoadedComponent>>,
    pub tools: BTreeMap<String, Tool>,
    /// Tools whose definition drifted from their pin, held back until accepted.
    pub withheld: BTreeMap<String, Withheld>,
}

/// A tool held back because its definition changed.
#[derive(Clone)]
pub struct Withheld {
    pub tool: Tool,
    pub definition: String,
    pub pinned: String,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Why components were refused (their previous version, if any, is still served).
    pub refused: Vec<String>,
    /// Tools withheld after the reload because their definition drifted.
    pub withheld: Vec<String>,
}

/// The catalog being served and everything that changes it: loads, reloads, pin
/// acceptances, environment grants.
pub struct CatalogStore {
    current: RwLock<Arc<Catalog>>,
    /// One reload at a time.
    reloading: Mutex<()>,
    supply: SupplyChainConfig,
    fetcher: Fetcher,
    pins: PinStore,
    /// Environment variables each component always gets (from `[env]`).
    component_env: RwLock<HashMap<String, Vec<(String, String)>>>,
    /// The `[env]` pool the policy's `env` obligation may grant from.
    env_pool: RwLock<BTreeMap<String, String>>,
    /// Each component's `config` settings (`wasi:config/store`).
    settings: RwLock<HashMap<String, Arc<ComponentSettings>>>,
    /// Where supply events are recorded.
    audit: AuditLog,
}

impl CatalogStore {
    /// An empty catalog; [`CatalogStore::load`] fills it.
    pub fn new(
        supply: &SupplyChainConfig,
        fetcher: Fetcher,
        pins: PinStore,
        audit: AuditLog,
    ) -> CatalogStore {
        CatalogStore {
            current: RwLock::new(Arc::new(Catalog::default())),
            reloading: Mutex::new(()),
            fetcher,
            supply: supply.clone(),
            pins,
            component_env: RwLock::new(HashMap::new()),
            env_pool: RwLock::new(BTreeMap::new()),
            settings: RwLock::new(HashMap::new()),
            audit,
        }
    }

    /// Loads every configured component through the supply-chain checks, all or nothing: the
    /// first failure is returned, naming the component (and recorded first).
    pub fn load(
        &self,
        runtime: &Runtime,
        components: &[ComponentConfig],
    ) -> Result<(), GatewayError> {
        let mut loaded: Vec<Arc<LoadedComponent>> = Vec::new();
        for component in components {
            let loaded_one = self.load_checked(runtime, component, &loaded)?;
            loaded.push(Arc::new(loaded_one));
        }
        let catalog = self.build(loaded)?;
        self.replace(catalog);
        Ok(())
    }

    /// The catalog being served now.
    pub fn current(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, catalog: Catalog) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }

    /// The pin file the gateway reads (and `gatehouse component accept` writes).
    pub fn pins(&self) -> &PinStore {
        &self.pins
    }

    /// Sets the environment each component may be given: its `env` keys from the `[env]`
    /// table always, and any key of the table per call when the policy's `env` obligation
    /// names it. A component naming a key the table lacks refuses to start. Also takes each
    /// component's `config` settings, which come from the same declarations.
    pub fn grant_env(
        &self,
        pool: &BTreeMap<String, String>,
        components: &[ComponentConfig],
    ) -> Result<(), GatewayError> {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = components
            .iter()
            .map(|config| (config.name(), Arc::new(config.config.clone())))
            .collect();
        let mut granted = HashMap::new();
        for config in components {
            let name = config.name();
            let vars = config
                .env
                .iter()
                .map(|key| match pool.get(key) {
                    Some(value) => Ok((key.clone(), value.clone())),
                    None => Err(GatewayError::Config(format!(
                        "component `{name}` asks for environment variable `{key}`, which the [env] table does not define"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            granted.insert(name, vars);
        }
        *self
            .component_env
            .write()
            .unwrap_or_else(|e| e.into_inner()) = granted;
        *self.env_pool.write().unwrap_or_else(|e| e.into_inner()) = pool.clone();
        Ok(())
    }

    /// The settings a call of `component` may read (empty when it has none).
    pub fn settings_for(&self, component: &str) -> Arc<ComponentSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(component)
            .cloned()
            .unwrap_or_default()
    }

    /// The environment of one call of `component`: its configured variables plus those the
    /// call decision's `env` obligation (`granted`) grants from the `[env]` table.
    pub fn env_for(&self, component: &str, granted: &[String]) -> Vec<(String, String)> {
        let mut env = self
            .component_env
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(component)
            .cloned()
            .unwrap_or_default();
        for key in granted {
            match self
                .env_pool
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
            {
                Some(value) if !env.iter().any(|(k, _)| k == key) => {
                    env.push((key.clone(), value.clone()));
                }
                Some(_) => {}
                None => tracing::warn!(
                    key,
                    "the policy grants an environment variable the [env] table does not define; not granted"
                ),
            }
        }
        env
    }

    /// Loads one component: supply-chain checks, then compile and link. Records the load or
    /// its refusal in the audit log (phase `supply`).
    fn load_checked(
        &self,
        runtime: &Runtime,
        config: &ComponentConfig,
        others: &[Arc<LoadedComponent>],
    ) -> Result<LoadedComponent, GatewayError> {
        let location = config.location();
        let name = config.name();
        let result = (|| {
            if others.iter().any(|c| c.name == name) {
                return Err(GatewayError::DuplicateComponent(name.clone()));
            }
            let prepared = crate::supply::prepare(config, &self.supply, &self.fetcher)?;
            if let Some(reason) = &prepared.unsigned_reason {
                tracing::warn!(component = %name, %reason, "component loaded unsigned");
            }
            let component = runtime.load(&ComponentSpec {
                name: &name,
                path: &prepared.local_path,
                expected_digest: config.sha256.as_deref(),
                exclude: &config.exclude,
                prepared: Some(&prepared),
            })?;
            Ok(component)
        })();
        let (verdict, digest, reasons, detail) = match &result {
            Ok(component) => (
                "loaded",
                Some(component.digest.clone()),
                Vec::new(),
                serde_json::to_value(&component.provenance).unwrap_or_default(),
            ),
            Err(error) => {
                tracing::error!(component = %name, %error, "component refused");
                (
                    "refused",
                    None,
                    vec![error.to_string()],
                    serde_json::json!({"source": location}),
                )
            }
        };
        let input = serde_json::json!({"event": "load", "component": name, "provenance": detail});
        self.record_supply(verdict, None, digest, input, reasons)?;
        result
    }

    /// Builds the tool map of a set of components, checking every tool's definition against
    /// its pin; drifted tools are withheld (or flagged, with `on_drift = "allow"`).
    fn build(&self, components: Vec<Arc<LoadedComponent>>) -> Result<Catalog, GatewayError> {
        // Tool names are `<component>_…` and component names are unique and contain no `_`,
        // so names from different components cannot collide.
        let tools: Vec<Tool> = components.iter().flat_map(Tool::all).collect();
        let definitions: Vec<(String, String, String)> = tools
            .iter()
            .map(|tool| {
                (
                    tool.name().to_owned(),
                    definition_hash(&tool.definition()),
                    tool.component.digest.clone(),
                )
            })
            .collect();
        let checks = self.pins.check(&definitions)?;
        let mut catalog = Catalog {
            components,
            ..Catalog::default()
        };
        for ((mut tool, (name, definition, digest)), check) in
            tools.into_iter().zip(definitions).zip(checks)
        {
            match check {
                PinCheck::Same => {}
                PinCheck::New => {
                    let input = serde_json::json!({"event": "pin", "definition": definition});
                    self.record_supply("pinned", Some(&name), Some(digest), input, Vec::new())?;
                }
                PinCheck::Drift { pinned } => {
                    let withhold = self.supply.on_drift == DriftAction::Withhold;
                    let reason = format!(
                        "tool definition changed: pinned {pinned}, now {definition}; {}",
                        if withhold {
                            format!(
                                "withheld until `gatehouse component accept {name}` (pins: {})",
                                self.pins.path().display()
                            )
                        } else {
                            "offered anyway (on_drift = \"allow\")".to_owned()
                        }
                    );
                    tracing::warn!(tool = %name, %reason, "tool definition drift");
                    let input = serde_json::json!({
                        "event": "drift", "pinned": pinned, "definition": definition,
                        "withheld": withhold, "new": tool.definition(),
                    });
                    self.record_supply("drift", Some(&name), Some(digest), input, vec![reason])?;
                    if withhold {
                        catalog.withheld.insert(
                            name,
                            Withheld {
                                tool,
                                definition,
                                pinned,
                            },
                        );
                        continue;
                    }
                    tool.definition_changed = true;
                }
            }
            catalog.tools.insert(name, tool);
        }
        Ok(catalog)
    }

    /// Appends a `supply` entry; a supply event that cannot be recorded stops the load.
    fn record_supply(
        &self,
        verdict: &str,
        tool: Option<&str>,
        digest: Option<String>,
        input: Value,
        reasons: Vec<String>,
    ) -> Result<(), GatewayError> {
        let mut entry = NewEntry::new(
            "supply",
            verdict,
            serde_json::json!({"principal": "gatehouse", "transport": "internal", "client": "gatehouse", "authenticated": true}),
            input,
        );
        entry.tool = tool.map(str::to_owned);
        entry.component_digest = digest;
        entry.reasons = reasons;
        self.audit.append_blocking(entry)?;
        Ok(())
    }

    /// Replaces the served components with `components`, as a whole: each new or changed
    /// component goes through the digest, signature and drift checks first. A component that
    /// fails keeps its previous version (if any) and the failure is logged and audited. Calls
    /// already running finish on the version they started with. Blocking (compiles, may
    /// download): run it off the async executor.
    pub fn reload(
        &self,
        runtime: &Runtime,
        components: &[ComponentConfig],
    ) -> Result<ReloadReport, GatewayError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        let mut report = ReloadReport::default();
        let mut loaded: Vec<Arc<LoadedComponent>> = Vec::new();
        for config in components {
            match self.load_checked(runtime, config, &loaded) {
                Ok(component) => {
                    let previous = current.components.iter().find(|c| c.name == component.name);
                    match previous {
                        Some(previous) if previous.digest == component.digest => {
                            loaded.push(previous.clone());
                        }
                        Some(_) => {
                            report.replaced.push(component.name.clone());
                            loaded.push(Arc::new(component));
                        }
                        None => {
                            report.added.push(component.name.clone());
                            loaded.push(Arc::new(component));
                        }
                    }
                }
                Err(GatewayError::Audit(error)) => return Err(GatewayError::Audit(error)),
                Err(error) => {
                    report.refused.push(error.to_string());
                    // Keep the version already served under the name this entry would have.
                    let name = config.name();
                    if let Some(previous) = current.components.iter().find(|c| c.name == name)
                        && !loaded.iter().any(|c| c.name == name)
                    {
                        loaded.push(previous.clone());
                    }
                }
            }
        }
        report.removed = current
            .components
            .iter()
            .filter(|c| !loaded.iter().any(|l| l.name == c.name))
            .map(|c| c.name.clone())
            .collect();
        let catalog = self.build(loaded)?;
        report.withheld = catalog.withheld.keys().cloned().collect();
        let pool = self
            .env_pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Err(error) = self.grant_env(&pool, components) {
            report.refused.push(error.to_string());
        }
        self.replace(catalog);
        tracing::info!(?report, "components reloaded");
        Ok(report)
    }

    /// Re-reads the pin file: withheld tools whose definition an operator accepted are offered
    /// from now on (and the acceptance is recorded). Returns the tools released.
    pub fn refresh_pins(&self) -> Result<Vec<String>, GatewayError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current();
        if current.withheld.is_empty() {
            return Ok(Vec::new());
        }
        let pins = self.pins.read()?;
        let released: Vec<String> = current
            .withheld
            .iter()
            .filter(|(name, w)| {
                pins.tools
                    .get(*name)
                    .is_some_and(|p| p.definition == w.definition)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if released.is_empty() {
            return Ok(released);
        }
        let mut catalog = Catalog {
            components: current.components.clone(),
            tools: current.tools.clone(),
            withheld: current.withheld.clone(),
        };
        for name in &released {
            if let Some(withheld) = catalog.withheld.remove(name) {
                let input = serde_json::json!({"event": "accept", "previous": withheld.pinned, "definition": withheld.definition});
                self.record_supply(
                    "accepted",
                    Some(name),
                    Some(withheld.tool.component.digest.clone()),
                    input,
                    Vec::new(),
                )?;
                tracing::info!(tool = %name, "changed tool definition accepted; tool offered again");
                catalog.tools.insert(name.clone(), withheld.tool);
            }
        }
        self.replace(catalog);
        Ok(released)
    }
}
