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
    /// Whether the import is an interface of the tool contract (`wit/`, world
    /// `gatehouse:tool/tool`); one that is not fails to link.
    pub in_contract: bool,
}

/// The interfaces of the tool contract, world `gatehouse:tool/tool` in `wit/` (unversioned:
/// wasmtime links any WASI 0.2.x a component was built against). A test checks this list
/// against the WIT.
pub const CONTRACT_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "wasi:logging/logging",
    "wasi:config/store",
];

/// Whether `import` (`wasi:logging/logging@0.1.0-draft`) is an interface of the contract.
pub fn in_contract(import: &str) -> bool {
    let interface = import.split('@').next().unwrap_or(import);
    CONTRACT_INTERFACES.contains(&interface)
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
                in_contract: in_contract(&name),
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
        "wasi:logging/logging" => "log lines (the gateway's log, the audit log, the MCP client)",
        "wasi:config/store" => "its settings from gatehouse.toml (each read decided)",
        i if i.starts_with("wasi:") => {
            "other WASI interface (the gateway does not provide it: linking will fail)"
        }
        _ => "non-WASI import (the gateway does not provide it: linking will fail)",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use wit_parser::Resolve;

    use super::*;

    #[test]
    fn the_contract_list_is_the_tool_world_of_wit() {
        let mut resolve = Resolve::default();
        let (package, _) = resolve
            .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("wit"))
            .unwrap();
        let world = resolve.select_world(&[package], Some("tool")).unwrap();
        let mut from_wit: Vec<String> = resolve.worlds[world]
            .imports
            .keys()
            .map(|key| {
                let name = resolve.name_world_key(key);
                name.split('@').next().unwrap().to_owned()
            })
            .collect();
        from_wit.sort();
        let mut listed: Vec<String> = CONTRACT_INTERFACES.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(from_wit, listed);
        assert!(in_contract("wasi:config/store@0.2.0-draft"));
        assert!(!in_contract("example:missing/thing"));
    }
}
