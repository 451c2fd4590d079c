"""The `py-files` test component: a tool written in Python. `open` goes through wasi-libc to
`wasi:filesystem`, so the gateway decides each file operation; settings come from
`wasi:config/store`."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging, store


def _setting(key: str) -> str | None:
    try:
        return store.get(key)
    except Err as error:
        # The store's error variant as text, e.g. `Error_Upstream(denied by policy: ...)`.
        raise Err(f"{type(error.value).__name__}({error.value.value})")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as error:
        raise Err(f"read-file {path}: {error.strerror}")


class WitWorld(wit_world.WitWorld):
    def read_setting(self, key: str) -> str | None:
        return _setting(key)

    def read_file(self, path: str) -> str:
        return _read(path)

    def read_configured_file(self, key: str) -> str:
        path = _setting(key)
        if path is None:
            raise Err(f"the setting `{key}` is not set")
        logging.log(logging.Level.INFO, "py-files", f"reading {path}")
        return _read(path)
