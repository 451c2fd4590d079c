//! Rust bindings of the host interfaces Gatehouse implements itself (`wit/`, world
//! `gatehouse:tool/extensions`): `wasi:logging/logging` ([`super::logging`]) and
//! `wasi:config/store` ([`super::config`]). The rest of the contract is wasmtime-wasi's.

wasmtime::component::bindgen!({
    path: "wit",
    world: "gatehouse:tool/extensions",
});
