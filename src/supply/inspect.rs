//! What a component asks for and offers, read from its embedded WIT world without compiling
//! or running it: the page a reviewer reads before allowing a tool.

use serde::Serialize;
use wit_parser::decoding::DecodedWasm;
use wit_parser::{WorldItem, WorldKey};

/// One import and the capability it grants the component if the host provides it.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub name: String,
    pub capability: &'static str,
}

/// One exported function (a candidate tool).
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    /// `interface#function`, or the function name for world-level exports.
    pub name: String,
    pub docs: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct World {
    pub world: String,
    pub imports: Vec<Import>,
    pub exports: Vec<Export>,
}

/// Decodes the component's world.
pub fn world(bytes: &[u8]) -> Result<World, String> {
    let (resolve, world) = match wit_parser::decoding::decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => (resolve, world),
        Ok(DecodedWasm::WitPackage(..)) => {
            return Err("it is a WIT package, not a component".into());
        }
        Err(e) => return Err(format!("not a WebAssembly component: {e:#}")),
    };
    let w = &resolve.worlds[world];
    let imports = w
        .imports
        .keys()
        .map(|key| {
            let name = resolve.name_world_key(key);
            Import {
                capability: capability(&name),
                name,
            }
        })
        .collect();
    let mut exports = Vec::new();
    for (key, item) in &w.exports {
        match item {
            WorldItem::Function(func) => exports.push(Export {
                name: func.name.clone(),
                docs: func.docs.contents.clone(),
            }),
            WorldItem::Interface { id, .. } => {
                let qualified = resolve.name_world_key(key);
                for func in resolve.interfaces[*id].functions.values() {
                    exports.push(Export {
                        name: format!("{qualified}#{}", func.name),
                        docs: func.docs.contents.clone(),
                    });
                }
                if resolve.interfaces[*id].functions.is_empty()
                    && matches!(key, WorldKey::Interface(_))
                {
                    exports.push(Export {
                        name: qualified,
                        docs: None,
                    });
                }
            }
            WorldItem::Type { .. } => {}
        }
    }
    Ok(World {
        world: w.name.clone(),
        imports,
        exports,
    })
}

/// What an imported interface lets a component do, in a reviewer's words.
pub fn capability(import: &str) -> &'static str {
    let interface = import.split('@').next().unwrap_or(import);
    match interface {
        i if i.starts_with("wasi:http/") => "outgoing HTTP requests",
        i if i.starts_with("wasi:sockets/") => "network sockets",
        "wasi:filesystem/types" | "wasi:filesystem/preopens" => {
            "filesystem (preopened directories)"
        }
        "wasi:cli/environment" => "environment variables and arguments",
        i if i.starts_with("wasi:cli/std") || i.starts_with("wasi:cli/terminal") => {
            "standard streams"
        }
        "wasi:cli/exit" => "exit the process (ends the call)",
        i if i.starts_with("wasi:clocks/") => "clocks",
        i if i.starts_with("wasi:random/") => "random numbers",
        i if i.starts_with("wasi:io/") => "streams and polling (used by other interfaces)",
        i if i.starts_with("wasi:") => "other WASI interface",
        _ => "non-WASI import (the gateway does not provide it: linking will fail)",
    }
}
