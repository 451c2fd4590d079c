#!/bin/sh
# Builds {{name}}.wasm, a WebAssembly component with CPython inside, from app.py
# (needs componentize-py on PATH: `pip install -r requirements.txt`).
set -eu
cd "$(dirname "$0")"
componentize-py --wit-path wit --world tool componentize app --output {{name}}.wasm
echo "built {{name}}.wasm"
