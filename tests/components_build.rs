//! The test components build from source and are components (not core modules).

mod common;

/// `\0asm` followed by the component-model version 0x0d and layer 1.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

#[test]
fn every_test_component_builds_as_a_component() {
    for name in common::COMPONENTS {
        let path = common::component(name);
        assert!(path.is_absolute(), "{} is not absolute", path.display());
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            bytes.starts_with(&COMPONENT_HEADER),
            "{} does not start with the component header: {:02x?}",
            path.display(),
            &bytes[..bytes.len().min(8)]
        );
    }
}

#[test]
#[should_panic(expected = "no test component \"no-such-component\"")]
fn an_unknown_component_name_is_a_clear_panic() {
    common::component("no-such-component");
}

/// The build puts the WIT doc comments into each component (`package-docs`), where
/// `wit_parser::decoding::decode` (what the gateway uses) finds them: every world-level export function has its docs.
#[test]
fn world_level_functions_carry_their_docs() {
    for name in common::COMPONENTS {
        let path = common::component(name);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let decoded = wit_parser::decoding::decode(&bytes)
            .unwrap_or_else(|e| panic!("decoding {}: {e:#}", path.display()));
        let wit_parser::decoding::DecodedWasm::Component(resolve, world) = decoded else {
            panic!(
                "{} decodes as a WIT package, not a component",
                path.display()
            );
        };
        let world = &resolve.worlds[world];
        assert!(
            world.docs.contents.is_some(),
            "{name}: the world has no docs"
        );
        let functions: Vec<_> = world
            .exports
            .values()
            .filter_map(|item| match item {
                wit_parser::WorldItem::Function(f) => Some(f),
                _ => None,
            })
            .collect();
        assert!(!functions.is_empty(), "{name}: no world-level functions");
        for function in functions {
            assert!(
                function
                    .docs
                    .contents
                    .as_deref()
                    .is_some_and(|d| !d.is_empty()),
                "{name}: function {} has no docs",
                function.name
            );
        }
    }
}
