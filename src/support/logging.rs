//! Logs go to stderr, always: in stdio mode stdout carries the JSON-RPC stream.

use std::borrow::Cow;

use tracing_subscriber::EnvFilter;

/// The most rmcp may log unless `RUST_LOG` names it.
const RMCP_CEILING: &str = "rmcp=info";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber; `RUST_LOG` filters, `default_level` applies without it.
pub fn init(format: LogFormat, default_level: &str) {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default();
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // rmcp logs whole JSON-RPC messages at debug level, arguments and all, so a broad
    // `RUST_LOG=debug` would write every caller's secrets to the log. It stays at info unless
    // the operator names it on purpose (`RUST_LOG=rmcp=debug`).
    if !directives.contains("rmcp") {
        filter = filter.add_directive(RMCP_CEILING.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    // A second initialization (tests calling into the CLI twice) keeps the first subscriber.
    drop(result);
}

/// `text` with every control character (newlines, carriage returns, escape sequences) and every
/// bidirectional-formatting character written as a `\u{..}`-style escape, so that text a tool
/// controls stays inside its one log field: it cannot end the line and forge another, move the
/// cursor, or reorder what an operator reads.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn needs_escape(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(printable("plain ünïcödé 😀"), "plain ünïcödé 😀");
        assert_eq!(
            printable("a\nERROR forged\r\u{1b}[2K\u{202e}x"),
            "a\\nERROR forged\\r\\u{1b}[2K\\u{202e}x"
        );
    }
}
