//! The directories an operator makes visible to components (`[[mounts]]`, `--dir`).

use std::path::PathBuf;

use serde::Deserialize;

/// A host directory made visible to components (`--dir HOST::GUEST[::rw]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    pub host: PathBuf,
    pub guest: String,
    #[serde(default)]
    pub writable: bool,
}

impl std::str::FromStr for MountConfig {
    type Err = String;

    /// Parses wasmtime's `HOST::GUEST` convention, with an optional `::rw` (or `::ro`) suffix.
    fn from_str(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.split("::").collect();
        let (host, guest, writable) = match parts.as_slice() {
            [host] => (*host, *host, false),
            [host, guest] => (*host, *guest, false),
            [host, guest, "rw"] => (*host, *guest, true),
            [host, guest, "ro"] => (*host, *guest, false),
            [_, _, mode] => {
                return Err(format!(
                    "--dir {spec:?}: unknown mode {mode:?} (expected `rw` or `ro`)"
                ));
            }
            _ => {
                return Err(format!(
                    "--dir {spec:?}: expected HOST_DIR::GUEST_DIR[::rw]"
                ));
            }
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "--dir {spec:?}: host and guest directories must not be empty"
            ));
        }
        Ok(MountConfig {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
            writable,
        })
    }
}
