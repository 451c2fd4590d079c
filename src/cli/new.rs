//! `gatehouse new tool NAME --lang rust|python|js`: writes a minimal tool project that builds
//! and serves as it is, so an author starts from something that works rather than from the
//! contract's documentation.
//!
//! The templates are files under `src/cli/new/`, embedded in the binary, and so is the contract
//! itself (`wit/` at the top of the repository), which every project gets a copy of under
//! `wit/deps/`: a project builds offline against exactly the contract of the gateway that wrote
//! it. The toolchain versions a project pins are the ones the test suite builds with.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub what: NewCommand,
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Write a tool project in a new directory NAME: sources, the WIT contract, a build
    /// command, a gatehouse.toml to serve it and a README.
    Tool(ToolArgs),
}

#[derive(Debug, Args)]
pub struct ToolArgs {
    /// The tool's name: lowercase words of letters and digits joined by `-` (`weather`,
    /// `pdf-text`). Its MCP tools are `NAME_<function>`.
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Where to create the directory NAME (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub parent: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// wit-bindgen, built with cargo for wasm32-wasip2.
    Rust,
    /// componentize-py (CPython inside the component).
    Python,
    /// componentize-js (SpiderMonkey inside the component); needs Node >= 22.
    Js,
}

/// componentize-py, as `tests/e2e/requirements.txt` pins it.
const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js, the preview2-shim it imports without declaring it, and the wizer it must be
/// held at (newer releases lack builds for some platforms, which breaks `npm ci`), as
/// `scripts/js-toolchain/package.json` pins them.
const COMPONENTIZE_JS: &str = "0.23.0";
const PREVIEW2_SHIM: &str = "0.25.0";
const WIZER: &str = "10.0.0";

/// The contract: each file of the repository's `wit/`, and where a project keeps it under
/// `wit/deps/` (one directory per package, as WIT tooling resolves them).
const CONTRACT: &[(&str, &str)] = &[
    (
        "gatehouse-tool/world.wit",
        include_str!("../../wit/world.wit"),
    ),
    (
        "gatehouse-tool/README.md",
        include_str!("../../wit/README.md"),
    ),
    ("cli/cli.wit", include_str!("../../wit/deps/cli/cli.wit")),
    (
        "clocks/clocks.wit",
        include_str!("../../wit/deps/clocks/clocks.wit"),
    ),
    (
        "config/store.wit",
        include_str!("../../wit/deps/config/store.wit"),
    ),
    (
        "config/world.wit",
        include_str!("../../wit/deps/config/world.wit"),
    ),
    (
        "filesystem/filesystem.wit",
        include_str!("../../wit/deps/filesystem/filesystem.wit"),
    ),
    (
        "http/http.wit",
        include_str!("../../wit/deps/http/http.wit"),
    ),
    ("io/io.wit", include_str!("../../wit/deps/io/io.wit")),
    (
        "logging/logging.wit",
        include_str!("../../wit/deps/logging/logging.wit"),
    ),
    (
        "logging/world.wit",
        include_str!("../../wit/deps/logging/world.wit"),
    ),
    (
        "random/random.wit",
        include_str!("../../wit/deps/random/random.wit"),
    ),
    (
        "sockets/sockets.wit",
        include_str!("../../wit/deps/sockets/sockets.wit"),
    ),
];

/// Files every project has, whatever its language.
const COMMON: &[Template] = &[
    Template::file("wit/world.wit", include_str!("new/world.wit")),
    Template::file("README.md", include_str!("new/README.md")),
    Template::file("gatehouse.toml", include_str!("new/gatehouse.toml")),
    Template::file("policy-data.json", include_str!("new/policy-data.json")),
];

const RUST: &[Template] = &[
    Template::file("Cargo.toml", include_str!("new/rust/Cargo.toml")),
    Template::file("src/lib.rs", include_str!("new/rust/src/lib.rs")),
    Template::script("build.sh", include_str!("new/rust/build.sh")),
];

const PYTHON: &[Template] = &[
    Template::file("app.py", include_str!("new/python/app.py")),
    Template::file(
        "requirements.txt",
        include_str!("new/python/requirements.txt"),
    ),
    Template::script("build.sh", include_str!("new/python/build.sh")),
];

const JS: &[Template] = &[
    Template::file("app.js", include_str!("new/js/app.js")),
    Template::file("package.json", include_str!("new/js/package.json")),
];

/// One file of a project: its path in the project and its text, with `{{placeholders}}`.
struct Template {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

impl Template {
    const fn file(path: &'static str, text: &'static str) -> Self {
        Self {
            path,
            text,
            executable: false,
        }
    }

    const fn script(path: &'static str, text: &'static str) -> Self {
        Self {
            path,
            text,
            executable: true,
        }
    }
}

impl Lang {
    fn templates(self) -> &'static [Template] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }

    /// The README's words for this language: (language, table rows of its files, build steps).
    fn readme(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Lang::Rust => (
                "Rust",
                "| `src/lib.rs` | the tool: implements the trait wit-bindgen generates from the world |\n\
                 | `Cargo.toml`, `build.sh` | the crate (wit-bindgen) and its build |\n",
                "```sh\nrustup target add wasm32-wasip2   # once\n./build.sh                         \
                 # cargo build --release --target wasm32-wasip2; writes {{name}}.wasm\n```",
            ),
            Lang::Python => (
                "Python",
                "| `app.py` | the tool: class `WitWorld` implements the world's exports |\n\
                 | `requirements.txt`, `build.sh` | the toolchain (componentize-py) and the build |\n",
                "```sh\npython3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once\n\
                 PATH=\"$PWD/.venv/bin:$PATH\" ./build.sh   # componentize-py; writes {{name}}.wasm\n```\n\n\
                 The component carries CPython: about 18 MB, and the gateway takes tens of seconds \
                 to compile it the first time it loads it (then it is cached).",
            ),
            Lang::Js => (
                "JavaScript",
                "| `app.js` | the tool: exports one function per exported WIT function (camelCase) |\n\
                 | `package.json` | the toolchain (componentize-js) and the build script |\n",
                "Needs Node.js 22 or later.\n\n\
                 ```sh\nnpm install     # once\nnpm run build   # componentize-js; writes {{name}}.wasm\n```\n\n\
                 The component carries a JavaScript engine: about 12–15 MB, and the gateway takes \
                 tens of seconds to compile it the first time it loads it (then it is cached). \
                 `fetch` works and goes out through `wasi:http`, decided by the policy.",
            ),
        }
    }
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        NewCommand::Tool(tool) => {
            let dir = tool.parent.join(&tool.name);
            write_tool(&tool.name, tool.lang, &dir)?;
            println!(
                "wrote {} ({} tool `{}`); see {}",
                dir.display(),
                tool.lang.readme().0,
                tool.name,
                dir.join("README.md").display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes the project for tool `name` into `dir`, which must not exist yet (its parent must).
pub fn write_tool(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<()> {
    validate_name(name)?;
    fs::create_dir(dir).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} already exists; not overwriting it: choose another name or --parent, or remove it",
            dir.display()
        ),
        _ => anyhow::anyhow!("cannot create {}: {error}", dir.display()),
    })?;
    let (language, files, build) = lang.readme();
    let render = |text: &str| {
        text.replace("{{language}}", language)
            .replace("{{files}}", files)
            .replace("{{build}}", build)
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{componentize_py}}", COMPONENTIZE_PY)
            .replace("{{componentize_js}}", COMPONENTIZE_JS)
            .replace("{{preview2_shim}}", PREVIEW2_SHIM)
            .replace("{{wizer}}", WIZER)
    };
    for template in COMMON.iter().chain(lang.templates()) {
        write_file(
            dir,
            template.path,
            &render(template.text),
            template.executable,
        )?;
    }
    for (path, text) in CONTRACT {
        write_file(dir, &format!("wit/deps/{path}"), text, false)?;
    }
    Ok(())
}

fn write_file(dir: &Path, relative: &str, text: &str, executable: bool) -> anyhow::Result<()> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Words WIT or Rust reserve: a tool named like one would not build (the name is a WIT package
/// name and a crate name).
const RESERVED: &[&str] = &[
    // WIT
    "as",
    "async",
    "bool",
    "borrow",
    "char",
    "constructor",
    "enum",
    "error-context",
    "export",
    "f32",
    "f64",
    "flags",
    "from",
    "func",
    "future",
    "import",
    "include",
    "interface",
    "list",
    "option",
    "own",
    "package",
    "record",
    "resource",
    "result",
    "s8",
    "s16",
    "s32",
    "s64",
    "static",
    "stream",
    "string",
    "tuple",
    "type",
    "u8",
    "u16",
    "u32",
    "u64",
    "use",
    "variant",
    "with",
    "world",
    // Rust (the crate name; cargo refuses these)
    "abstract",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "typeof",
    "unsafe",
    "unsized",
    "virtual",
    "where",
    "while",
    "yield",
];

/// A name is kebab-case words (`[a-z][a-z0-9]*` joined by `-`), at most 64 bytes: a valid WIT
/// identifier, crate name, npm package name, file name and MCP tool-name prefix alike.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    const RULE: &str = "a tool name is lowercase words of letters and digits, each starting \
                        with a letter, joined by single `-` (e.g. `weather` or `pdf-text`)";
    if name.is_empty() || name.len() > 64 {
        bail!("tool name {name:?} must be 1 to 64 characters long: {RULE}");
    }
    let word_ok = |word: &str| {
        let mut chars = word.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if !name.split('-').all(word_ok) {
        bail!("tool name {name:?} is not valid: {RULE}");
    }
    if RESERVED.contains(&name) {
        bail!("tool name {name:?} is a reserved word in WIT or Rust; choose another");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_words_and_not_reserved() {
        for good in ["weather", "pdf-text", "a", "tool2", "s3-sync"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            "Weather",
            "pdf_text",
            "-x",
            "x-",
            "a--b",
            "2fa",
            "a-2b",
            "über",
            "a b",
            "../x",
            "x/y",
            ".",
            "world",
            "type",
            "fn",
            &"a".repeat(65),
        ] {
            let error = validate_name(bad).unwrap_err().to_string();
            assert!(error.contains("tool name"), "{bad:?}: {error}");
        }
    }

    /// Every file of the repository's `wit/` is embedded, unchanged, and nothing else is: the
    /// contract a project gets is the one the gateway implements.
    #[test]
    fn the_embedded_contract_is_the_repository_wit() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("wit");
        let mut on_disk = Vec::new();
        for entry in walk(&root) {
            let relative = entry
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let embedded_as = match relative.strip_prefix("deps/") {
                Some("VERSIONS.md") => continue, // provenance notes, not part of the contract
                Some(dep) => dep.to_string(),
                None => format!("gatehouse-tool/{relative}"),
            };
            on_disk.push((embedded_as, fs::read_to_string(&entry).unwrap()));
        }
        on_disk.sort();
        let mut embedded: Vec<_> = CONTRACT
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        embedded.sort();
        assert_eq!(
            on_disk.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            embedded.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "add the new file of wit/ to CONTRACT"
        );
        assert!(
            on_disk == embedded,
            "an embedded contract file differs from wit/"
        );
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    /// The versions a project pins are the ones the test suite builds its components with.
    #[test]
    fn projects_pin_the_toolchains_the_tests_use() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let requirements = fs::read_to_string(repo.join("tests/e2e/requirements.txt")).unwrap();
        assert!(
            requirements
                .lines()
                .any(|line| line == format!("componentize-py=={COMPONENTIZE_PY}")),
            "tests/e2e/requirements.txt does not pin componentize-py=={COMPONENTIZE_PY}"
        );
        let toolchain: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(repo.join("scripts/js-toolchain/package.json")).unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_tool("demo", Lang::Js, &dir.path().join("demo")).unwrap();
        let project: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(dir.path().join("demo/package.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(project["devDependencies"], toolchain["devDependencies"]);
        assert_eq!(project["overrides"], toolchain["overrides"]);
    }

    #[test]
    fn a_project_has_its_sources_the_contract_and_no_placeholder_left() {
        let dir = tempfile::tempdir().unwrap();
        for (lang, expected) in [
            (Lang::Rust, &["Cargo.toml", "src/lib.rs", "build.sh"][..]),
            (
                Lang::Python,
                &["app.py", "requirements.txt", "build.sh"][..],
            ),
            (Lang::Js, &["app.js", "package.json"][..]),
        ] {
            let project = dir.path().join(format!("{lang:?}").to_lowercase());
            write_tool("pdf-text", lang, &project).unwrap();
            for file in expected
                .iter()
                .chain(&["README.md", "gatehouse.toml", "policy-data.json"])
            {
                assert!(project.join(file).is_file(), "{lang:?}: {file} missing");
            }
            assert!(project.join("wit/deps/gatehouse-tool/world.wit").is_file());
            for file in walk(&project) {
                let text = fs::read_to_string(&file).unwrap();
                assert!(
                    !text.contains("{{"),
                    "{} keeps a placeholder",
                    file.display()
                );
            }
            let world = fs::read_to_string(project.join("wit/world.wit")).unwrap();
            assert!(world.contains("package local:pdf-text;"), "{world}");
        }
        let build = project_file(dir.path(), "rust", "build.sh");
        assert!(build.contains("release/pdf_text.wasm") && build.contains("pdf-text.wasm"));
        let mode = fs::metadata(dir.path().join("rust/build.sh")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o111,
            0o111
        );
    }

    fn project_file(dir: &Path, project: &str, file: &str) -> String {
        fs::read_to_string(dir.join(project).join(file)).unwrap()
    }

    #[test]
    fn an_existing_directory_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("demo");
        fs::create_dir(&project).unwrap();
        fs::write(project.join("app.py"), "mine").unwrap();
        let error = write_tool("demo", Lang::Python, &project)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("already exists; not overwriting it"),
            "{error}"
        );
        assert_eq!(fs::read_to_string(project.join("app.py")).unwrap(), "mine");
        assert_eq!(fs::read_dir(&project).unwrap().count(), 1);
        // A bad name writes nothing at all.
        let error = write_tool("Demo", Lang::Python, &dir.path().join("Demo")).unwrap_err();
        assert!(error.to_string().contains("not valid"), "{error}");
        assert!(!dir.path().join("Demo").exists());
    }
}
