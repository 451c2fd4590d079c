#!/bin/sh
# Builds {{name}}.wasm, a WebAssembly component for wasm32-wasip2
# (once: `rustup target add wasm32-wasip2`).
set -eu
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm"
