//! The `echo` test component: exports a `fetch` whose name collides with the `fetch`
//! component's, plus a plain echo.

wit_bindgen::generate!({ path: "wit", world: "echo" });

struct Component;

/// The built-in table behind `fetch`.
const TABLE: &[(&str, &str)] = &[("alpha", "first"), ("beta", "second"), ("gamma", "third")];

impl Guest for Component {
    fn fetch(key: String) -> Option<String> {
        TABLE
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_string())
    }

    fn echo(message: String) -> String {
        message
    }
}

export!(Component);
