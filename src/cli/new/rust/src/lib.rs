//! The tool `{{name}}`: a WebAssembly component written against Gatehouse's contract
//! (`wit/world.wit`). `wit-bindgen` generates a Rust trait from the world; implementing it
//! is implementing the tool.

wit_bindgen::generate!({ path: "wit", world: "tool", generate_all });

use wasi::config::store;
use wasi::logging::logging::{Level, log};

struct Tool;

impl Guest for Tool {
    fn greet(name: String) -> String {
        // A setting the policy withholds reads as an error: fall back to the default.
        let greeting = store::get("greeting")
            .ok()
            .flatten()
            .unwrap_or_else(|| "Hello".to_string());
        log(Level::Info, "{{name}}", &format!("greeting {name}"));
        format!("{greeting}, {name}!")
    }
}

export!(Tool);
