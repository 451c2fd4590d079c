"""The tool `{{name}}`: a WebAssembly component written against Gatehouse's contract
(`wit/world.wit`). componentize-py generates the `wit_world` module from the world;
the class `WitWorld` implements its exports."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import logging, store


class WitWorld(wit_world.WitWorld):
    def greet(self, name: str) -> str:
        try:
            greeting = store.get("greeting") or "Hello"
        except Err:
            # A setting the policy withholds reads as an error: fall back to the default.
            greeting = "Hello"
        logging.log(logging.Level.INFO, "{{name}}", f"greeting {name}")
        return f"{greeting}, {name}!"
