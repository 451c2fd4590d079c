//! Loading a component and finding the tools it offers.
//!
//! The tool list comes from the component's own WIT (decoded with `wit-parser`, including the
//! doc comments the toolchain embedded), so names, parameter names and descriptions are the
//! author's. Exports of `wasi:` interfaces (`wasi:cli/run`, `wasi:http/incoming-handler`) are
//! entry points a toolchain adds, not tools, and are never offered; so is the interface
//! `exports` with its one function `init(app-name, symbols, …)` that componentize-py adds to
//! every Python component to set up its interpreter at build time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wit_parser::decoding::DecodedWasm;
use wit_parser::{Function, FunctionKind, Resolve, WorldItem, WorldKey};

use super::cache::{CompileCache, CompileSource};
use crate::host::CallState;
use crate::supply::source::normalize_digest;
use crate::supply::{Prepared, Provenance};
use crate::wit_json::{self, FuncSignature};

/// Longest tool name we produce: many LLM APIs refuse function names over 64 characters.
const MAX_TOOL_NAME_LEN: usize = 64;

/// A component compiled, linked and ready to instantiate once per call.
pub struct LoadedComponent {
    pub name: String,
    pub source: PathBuf,
    /// `sha256:<hex>` of the component file.
    pub digest: String,
    pub size_bytes: u64,
    pub compiled: CompileSource,
    pub load_time: Duration,
    pub component: Component,
    pub pre: InstancePre<CallState>,
    pub functions: Vec<ExportedFunction>,
    /// Exports that could not be offered, with the reason (also logged as warnings).
    pub skipped: Vec<SkippedFunction>,
    /// Imports the component asks for (`wasi:http/outgoing-handler@0.2.6`, …).
    pub imports: Vec<String>,
    /// Where it came from and who signed it (`input.tool.component` for policy).
    pub provenance: Provenance,
}

/// One exported function, offered as one MCP tool.
pub struct ExportedFunction {
    pub tool_name: String,
    /// The exported interface (`example:types/shapes`), `None` for world-level functions.
    pub interface: Option<String>,
    pub function: String,
    pub signature: FuncSignature,
    pub input_schema: Arc<Map<String, Value>>,
    pub output_schema: Option<Arc<Map<String, Value>>>,
    pub export: ComponentExportIndex,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFunction {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read component {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "component {path}: digest mismatch: expected {expected}, file has {actual}; refusing to load"
    )]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "component name {name:?} is invalid: use lowercase letters, digits and `-`, starting with a letter"
    )]
    InvalidName { name: String },
    #[error("{path} is not a WebAssembly component: {message}")]
    NotAComponent { path: PathBuf, message: String },
    #[error("component {path} failed to compile: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("component `{name}` cannot be linked: {message}")]
    Link { name: String, message: String },
    #[error("component `{name}`: {message}")]
    Tools { name: String, message: String },
}

/// Derives a component's default name from its file name: `my_tool.wasm` → `my-tool`.
pub fn default_component_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component")
        .to_ascii_lowercase()
        .replace(['_', '.', ' '], "-")
}

fn validate_component_name(name: &str) -> Result<(), LoadError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(LoadError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// The digest is the supply chain's; re-exported where the runtime's callers have found it.
pub use crate::supply::sha256_digest;

/// What to load and how it may be offered.
pub struct ComponentSpec<'a> {
    pub name: &'a str,
    pub path: &'a Path,
    pub expected_digest: Option<&'a str>,
    pub exclude: &'a [String],
    /// Bytes that already passed the supply-chain checks; loaded instead of reading `path`, so
    /// what was verified is what runs.
    pub prepared: Option<&'a Prepared>,
}

pub(super) fn load(
    engine: &Engine,
    linker: &Linker<CallState>,
    cache: &CompileCache,
    spec: &ComponentSpec<'_>,
) -> Result<LoadedComponent, LoadError> {
    let started = Instant::now();
    validate_component_name(spec.name)?;
    let path = spec.path;
    let read;
    let bytes: &[u8] = match spec.prepared {
        Some(prepared) => &prepared.bytes,
        None => {
            read = std::fs::read(path).map_err(|source| LoadError::Read {
                path: path.to_owned(),
                source,
            })?;
            &read
        }
    };
    let digest = sha256_digest(bytes);
    if let Some(expected) = spec.expected_digest {
        let expected = normalize_digest(expected);
        if expected != digest {
            return Err(LoadError::DigestMismatch {
                path: path.to_owned(),
                expected,
                actual: digest,
            });
        }
    }
    let (resolve, world) = match wit_parser::decoding::decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => (resolve, world),
        Ok(DecodedWasm::WitPackage(..)) => {
            return Err(LoadError::NotAComponent {
                path: path.to_owned(),
                message: "it is a WIT package, not a component".into(),
            });
        }
        Err(e) => {
            return Err(LoadError::NotAComponent {
                path: path.to_owned(),
                message: format!("{e:#}"),
            });
        }
    };
    let hex = digest.trim_start_matches("sha256:");
    let (component, compiled) =
        cache
            .load_or_compile(engine, bytes, hex)
            .map_err(|e| LoadError::Compile {
                path: path.to_owned(),
                message: format!("{e:#}"),
            })?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link {
            name: spec.name.to_owned(),
            message: format!(
                "{e:#} (Gatehouse provides the imports of the world gatehouse:tool/tool in its wit/ directory: WASI 0.2 clocks, random, cli, filesystem, sockets, io, wasi:http outgoing requests, wasi:logging and wasi:config)"
            ),
        })?;
    let imports = resolve.worlds[world]
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect();
    let (functions, skipped) = discover_tools(spec, &resolve, world, &component)?;
    let provenance = match spec.prepared {
        Some(prepared) => prepared.provenance.clone(),
        None => Provenance {
            digest: digest.clone(),
            source: path.display().to_string(),
            signed: false,
            signer: None,
        },
    };
    Ok(LoadedComponent {
        name: spec.name.to_owned(),
        source: path.to_owned(),
        digest,
        size_bytes: bytes.len() as u64,
        compiled,
        load_time: started.elapsed(),
        component,
        pre,
        functions,
        skipped,
        imports,
        provenance,
    })
}

/// Walks the world's exports and turns every representable function into a tool.
fn discover_tools(
    spec: &ComponentSpec<'_>,
    resolve: &Resolve,
    world: wit_parser::WorldId,
    component: &Component,
) -> Result<(Vec<ExportedFunction>, Vec<SkippedFunction>), LoadError> {
    let mut functions: Vec<ExportedFunction> = Vec::new();
    let mut skipped = Vec::new();
    for (key, item) in &resolve.worlds[world].exports {
        match item {
            WorldItem::Function(func) => {
                let export = component.get_export_index(None, &func.name);
                offer(
                    spec,
                    resolve,
                    None,
                    func,
                    export,
                    &mut functions,
                    &mut skipped,
                );
            }
            WorldItem::Interface { id, .. } => {
                let interface = &resolve.interfaces[*id];
                let is_wasi = interface
                    .package
                    .is_some_and(|p| resolve.packages[p].name.namespace == "wasi");
                let qualified = resolve.name_world_key(key);
                if is_wasi {
                    tracing::debug!(component = spec.name, export = %qualified, "not a tool: WASI entry point");
                    continue;
                }
                if is_componentize_py_init(key, interface) {
                    tracing::debug!(component = spec.name, export = %qualified, "not a tool: componentize-py's runtime set-up");
                    continue;
                }
                let short = match key {
                    WorldKey::Name(name) => name.clone(),
                    WorldKey::Interface(_) => {
                        interface.name.clone().unwrap_or_else(|| qualified.clone())
                    }
                };
                let instance = component.get_export_index(None, &qualified);
                for func in interface.functions.values() {
                    let export = instance
                        .as_ref()
                        .and_then(|i| component.get_export_index(Some(i), &func.name));
                    offer(
                        spec,
                        resolve,
                        Some((&qualified, &short)),
                        func,
                        export,
                        &mut functions,
                        &mut skipped,
                    );
                }
            }
            WorldItem::Type { .. } => {}
        }
    }
    let mut seen = std::collections::HashMap::new();
    for f in &functions {
        if let Some(previous) = seen.insert(f.tool_name.as_str(), f) {
            return Err(LoadError::Tools {
                name: spec.name.to_owned(),
                message: format!(
                    "two exports map to the tool name `{}`: {} and {}",
                    f.tool_name,
                    display_export(previous),
                    display_export(f)
                ),
            });
        }
    }
    Ok((functions, skipped))
}

fn display_export(f: &ExportedFunction) -> String {
    match &f.interface {
        Some(i) => format!("{i}#{}", f.function),
        None => f.function.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
/// componentize-py's set-up export: an inline interface `exports` whose only function is
/// `init`, taking the application's name first (`app-name`). The build runs it once, before
/// the interpreter's state is snapshotted; an agent calling it would reinitialise the tool.
fn is_componentize_py_init(key: &WorldKey, interface: &wit_parser::Interface) -> bool {
    matches!(key, WorldKey::Name(name) if name == "exports")
        && interface.functions.len() == 1
        && interface.functions.get("init").is_some_and(|init| {
            init.params
                .first()
                .is_some_and(|param| param.name == "app-name")
        })
}

fn offer(
    spec: &ComponentSpec<'_>,
    resolve: &Resolve,
    interface: Option<(&String, &String)>,
    func: &Function,
    export: Option<ComponentExportIndex>,
    functions: &mut Vec<ExportedFunction>,
    skipped: &mut Vec<SkippedFunction>,
) {
    let export_name = match interface {
        Some((qualified, _)) => format!("{qualified}#{}", func.name),
        None => func.name.clone(),
    };
    let mut skip = |reason: String| {
        // The banner and `gatehouse tools` list these for people; this is for log pipelines.
        tracing::warn!(component = spec.name, function = %export_name, %reason, "export not offered as a tool");
        skipped.push(SkippedFunction {
            name: export_name.clone(),
            reason,
        });
    };
    if spec
        .exclude
        .iter()
        .any(|e| *e == func.name || *e == export_name)
    {
        tracing::debug!(component = spec.name, function = %export_name, "excluded by configuration");
        return;
    }
    if !matches!(func.kind, FunctionKind::Freestanding) {
        skip(match func.kind {
            FunctionKind::AsyncFreestanding => "async functions are not supported yet".into(),
            _ => "resource methods, constructors and static functions need a resource handle, which JSON cannot carry".into(),
        });
        return;
    }
    let Some(export) = export else {
        skip("declared in the component's WIT but not found among its exports".into());
        return;
    };
    let signature = match wit_json::signature(resolve, func) {
        Ok(signature) => signature,
        Err(unsupported) => {
            skip(unsupported.to_string());
            return;
        }
    };
    let tool_name = match interface {
        Some((_, short)) => format!("{}_{short}_{}", spec.name, func.name),
        None => format!("{}_{}", spec.name, func.name),
    };
    if tool_name.len() > MAX_TOOL_NAME_LEN {
        skip(format!(
            "its tool name `{tool_name}` is longer than {MAX_TOOL_NAME_LEN} characters; give the component a shorter name"
        ));
        return;
    }
    functions.push(ExportedFunction {
        input_schema: Arc::new(wit_json::input_schema(&signature)),
        output_schema: wit_json::output_schema(&signature).map(Arc::new),
        tool_name,
        interface: interface.map(|(qualified, _)| qualified.clone()),
        function: func.name.clone(),
        signature,
        export,
    });
}

impl LoadedComponent {
    /// wasmtime's view of an exported function's type (for WAVE parsing, which is typed by it).
    pub fn function_type(
        &self,
        engine: &Engine,
        function: &ExportedFunction,
    ) -> Option<wasmtime::component::types::ComponentFunc> {
        use wasmtime::component::types::ComponentItem;
        let component_type = self.component.component_type();
        let item = match &function.interface {
            None => component_type.get_export(engine, &function.function)?.ty,
            Some(interface) => {
                let ComponentItem::ComponentInstance(instance) =
                    component_type.get_export(engine, interface)?.ty
                else {
                    return None;
                };
                instance.get_export(engine, &function.function)?.ty
            }
        };
        match item {
            ComponentItem::ComponentFunc(func) => Some(func),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the one interface the world `w` in `wit` exports is componentize-py's set-up.
    fn is_init(wit: &str) -> bool {
        let mut resolve = Resolve::default();
        resolve.push_str("test.wit", wit).unwrap();
        let (_, world) = resolve.worlds.iter().next().unwrap();
        let (key, item) = world.exports.iter().next().unwrap();
        let WorldItem::Interface { id, .. } = item else {
            panic!("not an interface export")
        };
        is_componentize_py_init(key, &resolve.interfaces[*id])
    }

    #[test]
    fn only_componentize_pys_set_up_export_is_held_back() {
        // The shape componentize-py 0.25 exports (its symbols record shortened).
        assert!(is_init(
            "package a:b; world w { export exports: interface { \
             init: func(app-name: string, symbols: list<string>, stub-wasi: bool); } }"
        ));
        // An author's own `init`s stay tools.
        for wit in [
            "package a:b; world w { export exports: interface { init: func(name: string); } }",
            "package a:b; world w { export setup: interface { init: func(app-name: string); } }",
            "package a:b; world w { export exports: interface { \
             init: func(app-name: string); run: func(); } }",
        ] {
            assert!(!is_init(wit), "{wit}");
        }
    }
}
