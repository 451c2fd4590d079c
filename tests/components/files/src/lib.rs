//! The `files` test component: plain `std::fs` calls, which wasi-libc maps onto the
//! `wasi:filesystem` preopens the host grants.

wit_bindgen::generate!({ path: "wit", world: "files" });

use std::fmt::Display;

struct Component;

/// Renders an I/O error with the operation and path, e.g. `read-file a.txt: No such file…`.
fn describe(operation: &str, path: &str, error: impl Display) -> String {
    format!("{operation} {path}: {error}")
}

impl Guest for Component {
    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| describe("read-file", &path, e))
    }

    fn write_file(path: String, contents: String) -> Result<(), String> {
        std::fs::write(&path, contents).map_err(|e| describe("write-file", &path, e))
    }

    fn list_dir(path: String) -> Result<Vec<String>, String> {
        let mut names = std::fs::read_dir(&path)
            .map_err(|e| describe("list-dir", &path, e))?
            .map(|entry| {
                entry
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .map_err(|e| describe("list-dir", &path, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        Ok(names)
    }
}

export!(Component);
