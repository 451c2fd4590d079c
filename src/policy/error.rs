//! Why a bundle could not be loaded. Each variant names the file (and, for Rego, the line).

use std::path::PathBuf;

/// A bundle was rejected: it is never served, and on reload the previous bundle keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("policy bundle {} is not a directory", .0.display())]
    NotADirectory(PathBuf),

    #[error("{file} is not UTF-8 text")]
    NotUtf8 { file: String },

    /// `message` starts with `file:line:column` and quotes the offending code.
    #[error("invalid Rego: {message}")]
    Parse { file: String, message: String },

    #[error("bad data file {file}: {message}")]
    Data { file: String, message: String },

    #[error(
        "{file}: package {package} is not a phase package: packages under gatehouse. must be \
         gatehouse.<phase> with phase one of list, call, http, fs, socket, result"
    )]
    UnknownPhasePackage { file: String, package: String },

    #[error(
        "{file}: package {package} declares `inject`, an obligation of the http phase only (it \
         sets headers on an outgoing request); move the rule to package gatehouse.http"
    )]
    InjectOutsideHttp { file: String, package: String },

    #[error(
        "{file}: package {package} declares an ask rule, but nobody can be asked about its decisions (ask is for call, http, fs, socket and config); use deny"
    )]
    AskOutsideActions { file: String, package: String },

    #[error("bundle defines no gatehouse.call package: every call would be denied")]
    MissingCallPackage,

    #[error("package gatehouse.call declares no allow rule: every call would be denied")]
    MissingCallAllow,

    /// Semantic errors found when the modules are analysed together (unsafe variables,
    /// recursion, conflicting rules); regorus's message carries the location.
    #[error("cannot compile bundle: {message}")]
    Compile { message: String },

    #[error("bundle tests failed: {}", failures.join("; "))]
    TestsFailed { failures: Vec<String> },
}

/// regorus reports a located error as several lines (`--> file:line:col`, the source line with
/// a caret, `error: message`). Decisions, logs and test summaries want one line:
/// `file:line:col: message (at `code`)`. Anything else is returned with whitespace collapsed.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let location = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("--> "));
    let message = text
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "));
    let code = text.lines().find_map(|line| {
        let (number, code) = line.split_once(" | ")?;
        number.trim().parse::<u32>().ok()?;
        Some(code.trim())
    });
    match (location, message) {
        (Some(location), Some(message)) => match code {
            Some(code) if !code.is_empty() => format!("{location}: {message} (at `{code}`)"),
            _ => format!("{location}: {message}"),
        },
        _ => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_regorus_errors_become_one_line() {
        let error = anyhow::anyhow!(
            "\n--> call.rego:6:12\n  |\n6 |     x := 1 / 0\n  |            ^\nerror: divide by zero"
        );
        assert_eq!(
            one_line(&error),
            "call.rego:6:12: divide by zero (at `x := 1 / 0`)"
        );
        assert_eq!(
            one_line(&anyhow::anyhow!("plain\n  message")),
            "plain message"
        );
    }
}
