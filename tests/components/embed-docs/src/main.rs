//! `embed-docs <component.wasm> <wit-dir> <world>`: puts the doc comments of the WIT a
//! component was built from into the component itself, as a `package-docs` custom
//! section, so that `wit_component::decode` (and `wasm-tools component wit`) return them.
//!
//! Why this exists: `wasm-component-ld` (the linker rustc uses for wasm32-wasip2) builds the
//! component from the type information wit-bindgen embeds, which carries no docs, and
//! writes no `package-docs` section. The gateway turns WIT docs into tool descriptions,
//! so the test components get them added here, after linking.
//!
//! A decoder injects `package-docs` into the package it synthesizes for a component
//! (`root:component`, world `root`), so that is the package described here. That package
//! holds the world-level functions and types, inline (kebab-named) interface exports and
//! the docs written on `export <interface>;` statements. The insides of exported
//! *package* interfaces (e.g. `example:types/directory`) belong to another package and
//! cannot be carried by this section; their docs stay in the WIT source only.
//!
//! Running the tool again replaces the section, and leaves a file that already has the
//! right one untouched, so it is safe (and cheap) on an unchanged build.

use anyhow::{Context, Result, bail};
use std::path::Path;
use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{
    Docs, InterfaceId, PackageMetadata, Resolve, TypeDefKind, TypeId, WorldId, WorldItem,
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm, wit_dir, world] = args.as_slice() else {
        bail!("usage: embed-docs <component.wasm> <wit-dir> <world>");
    };
    let summary = embed(Path::new(wasm), Path::new(wit_dir), world)
        .with_context(|| format!("embedding the docs of {wit_dir} into {wasm}"))?;
    eprintln!("embed-docs: {wasm}: {summary}");
    Ok(())
}

/// Embeds the docs and returns a one-line summary of what the section describes.
fn embed(wasm: &Path, wit_dir: &Path, world_name: &str) -> Result<String> {
    let original = std::fs::read(wasm).context("reading the component")?;
    let stripped = strip_custom_sections(&original, PackageMetadata::SECTION_NAME)?;

    let mut source = Resolve::default();
    let (package, _) = source.push_dir(wit_dir).context("parsing the WIT source")?;
    let source_world = source.select_world(&[package], Some(world_name))?;

    let DecodedWasm::Component(mut decoded, decoded_world) =
        decode(&stripped).context("decoding the component")?
    else {
        bail!("the file is a WIT package, not a component");
    };
    copy_world_docs(&source, source_world, &mut decoded, decoded_world)?;
    let root_package = decoded.worlds[decoded_world]
        .package
        .context("the decoded world has no package")?;
    let section = PackageMetadata::extract(&decoded, root_package).encode()?;

    let mut output = stripped;
    append_custom_section(&mut output, PackageMetadata::SECTION_NAME, &section);
    let summary = check_round_trip(&output, &source, source_world)?;
    if output == original {
        return Ok(format!("{summary} (unchanged)"));
    }
    // In place, on purpose: cargo hard-links `release/<name>.wasm` to `deps/<name>.wasm` and
    // re-links it on every build, so the docs must be in the inode both names share.
    std::fs::write(wasm, &output).context("writing the component")?;
    Ok(summary)
}

/// Copies docs from the source world onto the decoded component's world, matching
/// items by name.
fn copy_world_docs(
    source: &Resolve,
    source_world: WorldId,
    decoded: &mut Resolve,
    decoded_world: WorldId,
) -> Result<()> {
    decoded.worlds[decoded_world].docs = source.worlds[source_world].docs.clone();
    let world = &source.worlds[source_world];
    for (key, item) in world.imports.iter().chain(&world.exports) {
        let name = source.name_world_key(key);
        let is_export = world.exports.contains_key(key);
        let target = &decoded.worlds[decoded_world];
        let found = target
            .exports
            .iter()
            .chain(&target.imports)
            .find(|(k, _)| decoded.name_world_key(k) == name)
            .map(|(k, i)| (k.clone(), i.clone()));
        let Some((target_key, target_item)) = found else {
            // Imports the component does not use (and types only they use) are dropped
            // by the linker; an export that is missing is a real mismatch.
            if is_export {
                bail!("export {name} of the WIT source is not in the component");
            }
            continue;
        };
        match (item, target_item) {
            (WorldItem::Function(f), WorldItem::Function(_)) => {
                let world = &mut decoded.worlds[decoded_world];
                if let Some(WorldItem::Function(target)) = world.exports.get_mut(&target_key) {
                    target.docs = f.docs.clone();
                } else if let Some(WorldItem::Function(target)) = world.imports.get_mut(&target_key)
                {
                    target.docs = f.docs.clone();
                }
            }
            (WorldItem::Type { id, .. }, WorldItem::Type { id: target, .. }) => {
                copy_type_docs(source, *id, decoded, target);
            }
            (WorldItem::Interface { id, docs, .. }, WorldItem::Interface { id: target, .. }) => {
                copy_interface_docs(source, *id, decoded, target);
                let world = &mut decoded.worlds[decoded_world];
                let slot = if is_export {
                    world.exports.get_mut(&target_key)
                } else {
                    world.imports.get_mut(&target_key)
                };
                if let Some(WorldItem::Interface { docs: target, .. }) = slot {
                    *target = docs.clone();
                }
            }
            _ => bail!("{name} is a different kind of item in the component than in the WIT"),
        }
    }
    Ok(())
}

/// Copies the docs of an interface, its functions and its types.
fn copy_interface_docs(
    source: &Resolve,
    id: InterfaceId,
    decoded: &mut Resolve,
    target: InterfaceId,
) {
    let interface = &source.interfaces[id];
    decoded.interfaces[target].docs = interface.docs.clone();
    for (name, function) in &interface.functions {
        if let Some(target) = decoded.interfaces[target].functions.get_mut(name) {
            target.docs = function.docs.clone();
        }
    }
    for (name, ty) in &interface.types {
        if let Some(&target) = decoded.interfaces[target].types.get(name) {
            copy_type_docs(source, *ty, decoded, target);
        }
    }
}

/// Copies the docs of a type and of its fields, cases or flags.
fn copy_type_docs(source: &Resolve, id: TypeId, decoded: &mut Resolve, target: TypeId) {
    let from = &source.types[id];
    let to = &mut decoded.types[target];
    to.docs = from.docs.clone();
    fn copy<'a, T: 'a>(
        from: impl IntoIterator<Item = &'a T>,
        to: &mut [T],
        key: impl Fn(&T) -> (&str, &Docs),
        set: impl Fn(&mut T, Docs),
    ) {
        for item in from {
            let (name, docs) = key(item);
            if let Some(target) = to.iter_mut().find(|t| key(t).0 == name) {
                set(target, docs.clone());
            }
        }
    }
    match (&from.kind, &mut to.kind) {
        (TypeDefKind::Record(a), TypeDefKind::Record(b)) => copy(
            &a.fields,
            &mut b.fields,
            |f| (&f.name, &f.docs),
            |f, d| f.docs = d,
        ),
        (TypeDefKind::Variant(a), TypeDefKind::Variant(b)) => copy(
            &a.cases,
            &mut b.cases,
            |c| (&c.name, &c.docs),
            |c, d| c.docs = d,
        ),
        (TypeDefKind::Enum(a), TypeDefKind::Enum(b)) => copy(
            &a.cases,
            &mut b.cases,
            |c| (&c.name, &c.docs),
            |c, d| c.docs = d,
        ),
        (TypeDefKind::Flags(a), TypeDefKind::Flags(b)) => copy(
            &a.flags,
            &mut b.flags,
            |f| (&f.name, &f.docs),
            |f, d| f.docs = d,
        ),
        _ => {}
    }
}

/// Decodes the finished component again and checks that every documented world-level
/// export function of the source came back with its docs.
fn check_round_trip(wasm: &[u8], source: &Resolve, source_world: WorldId) -> Result<String> {
    let DecodedWasm::Component(decoded, world) =
        decode(wasm).context("decoding the component with its docs")?
    else {
        bail!("the output is not a component");
    };
    let mut functions = 0;
    for (key, item) in &source.worlds[source_world].exports {
        let WorldItem::Function(f) = item else {
            continue;
        };
        let name = source.name_world_key(key);
        let back = decoded.worlds[world]
            .exports
            .iter()
            .find_map(|(k, i)| match i {
                WorldItem::Function(g) if decoded.name_world_key(k) == name => Some(g),
                _ => None,
            })
            .with_context(|| format!("function {name} missing after embedding"))?;
        if back.docs != f.docs {
            bail!("the docs of function {name} did not survive decoding");
        }
        functions += usize::from(back.docs.contents.is_some());
    }
    let types = decoded
        .types
        .iter()
        .filter(|(_, t)| t.docs.contents.is_some())
        .count();
    Ok(format!(
        "{functions} world-level functions and {types} types documented"
    ))
}

/// The binary without top-level custom sections named `name`.
fn strip_custom_sections(wasm: &[u8], name: &str) -> Result<Vec<u8>> {
    let header = wasm.get(..8).context("too short for a wasm header")?;
    if &header[..4] != b"\0asm" {
        bail!("not a wasm binary");
    }
    let mut output = header.to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let start = at;
        let id = wasm[at];
        at += 1;
        let size = usize::try_from(read_leb128(wasm, &mut at)?)?;
        let end = at.checked_add(size).filter(|&e| e <= wasm.len());
        let end = end.with_context(|| format!("section at offset {start} runs past the end"))?;
        let keep = id != 0 || {
            let mut name_at = at;
            let len = usize::try_from(read_leb128(wasm, &mut name_at)?)?;
            wasm.get(name_at..name_at + len) != Some(name.as_bytes())
        };
        if keep {
            output.extend_from_slice(&wasm[start..end]);
        }
        at = end;
    }
    Ok(output)
}

/// Appends a custom section (allowed anywhere in a component) to the binary.
fn append_custom_section(wasm: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut body = Vec::new();
    write_leb128(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    wasm.push(0);
    write_leb128(wasm, body.len() as u64);
    wasm.extend_from_slice(&body);
}

fn read_leb128(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).context("truncated LEB128 number")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("LEB128 number longer than 64 bits")
}

fn write_leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
