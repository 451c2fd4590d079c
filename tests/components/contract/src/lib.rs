//! The `contract` test component: logs through `wasi:logging` and reads its settings through
//! `wasi:config/store`, the interfaces Gatehouse adds to WASI 0.2 (`wit/`).

wit_bindgen::generate!({ path: "wit", world: "contract", generate_all });

use wasi::config::store;
use wasi::logging::logging::{Level, log};

struct Component;

fn level(name: &str) -> Level {
    match name {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        "critical" => Level::Critical,
        _ => Level::Info,
    }
}

impl Guest for Component {
    fn log_lines(count: u32, level_name: String, message: String) -> u32 {
        for i in 0..count {
            log(level(&level_name), "contract", &format!("{message} {i}"));
        }
        count
    }

    fn read_config(key: String) -> Result<Option<String>, String> {
        store::get(&key).map_err(|e| format!("{e:?}"))
    }

    fn read_all_config() -> Result<Vec<(String, String)>, String> {
        store::get_all().map_err(|e| format!("{e:?}"))
    }
}

export!(Component);
