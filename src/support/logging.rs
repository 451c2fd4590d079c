//! Logs go to stderr, always: in stdio mode stdout carries the JSON-RPC stream.

use std::borrow::Cow;

use tracing_subscriber::filter::{Directive, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The most rmcp may log unless `RUST_LOG` names it.
const RMCP_CEILING: LevelFilter = LevelFilter::INFO;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Spans exported as traces rather than shown as the context of log lines: the target they
/// are created under, and the layer that exports them while traces are on.
pub struct Traces {
    pub target: &'static str,
    pub layer: Option<Box<dyn Layer<Registry> + Send + Sync>>,
}

/// Installs the global subscriber; `RUST_LOG` filters, `default_level` applies without it.
/// The spans of `traces.target` never reach the log lines, whatever `RUST_LOG` says: they
/// are built only while they are exported.
pub fn init(format: LogFormat, default_level: &str, traces: Traces) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let directive: Directive = format!("{}=off", traces.target)
        .parse()
        .expect("a target and a level make a valid directive");
    let filter = filter(rust_log.as_deref(), default_level).add_directive(directive);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => lines
            .json()
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(traces.layer)
        .with(lines)
        .try_init();
    // A second initialization (tests calling into the CLI twice) keeps the first subscriber.
    drop(result);
}

/// The filter of `rust_log` (the value of `RUST_LOG`), or of `default_level` without a valid one.
///
/// rmcp logs whole JSON-RPC messages at debug level, arguments and all, so a broad
/// `RUST_LOG=debug` would write every caller's secrets to the log: unless the operator names it
/// on purpose (`RUST_LOG=rmcp=debug`), rmcp logs at most at info, and never more than the
/// global level asks. It must not log *more* than asked either: rmcp writes three info lines per
/// request for clients of protocol revisions without sessions (the MCP Python SDK 2.3), and
/// under `RUST_LOG=warn` those were a fifth of what the gateway wrote and formatted per call.
fn filter(rust_log: Option<&str>, default_level: &str) -> EnvFilter {
    let (mut filter, spec) =
        match rust_log.and_then(|spec| Some((EnvFilter::try_new(spec).ok()?, spec))) {
            Some((filter, spec)) => (filter, spec),
            None => (EnvFilter::new(default_level), default_level),
        };
    if !spec.contains("rmcp") {
        let level = global_level(spec).min(RMCP_CEILING);
        let directive: Directive = format!("rmcp={level}")
            .parse()
            .expect("a target and a level make a valid directive");
        filter = filter.add_directive(directive);
    }
    filter
}

/// The level of a filter spec's directives without a target (`warn` in `warn,gatehouse=debug`):
/// what a target the spec does not name gets. Without one, such targets are off.
fn global_level(spec: &str) -> LevelFilter {
    spec.split(',')
        .filter_map(|directive| directive.trim().parse::<LevelFilter>().ok())
        .max()
        .unwrap_or(LevelFilter::OFF)
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
    use tracing_subscriber::filter::LevelFilter;

    use super::{filter, printable};

    #[test]
    fn rmcp_logs_no_more_than_the_global_level_nor_above_info() {
        let most = |rust_log, default| filter(rust_log, default).max_level_hint();
        // `RUST_LOG=warn` (as scripts/bench serves): nothing at info, rmcp's lines included.
        assert_eq!(most(Some("warn"), "info"), Some(LevelFilter::WARN));
        assert_eq!(most(None, "error"), Some(LevelFilter::ERROR));
        assert_eq!(most(Some("off"), "info"), Some(LevelFilter::OFF));
        // The default of `serve` and a broad debug level: rmcp stays at info (the hint is the
        // most verbose of all directives, so only the rmcp directive itself shows it).
        assert_eq!(most(None, "info"), Some(LevelFilter::INFO));
        assert!(
            filter(Some("debug"), "info")
                .to_string()
                .contains("rmcp=info")
        );
        assert!(
            filter(Some("warn,gatehouse=debug"), "info")
                .to_string()
                .contains("rmcp=warn")
        );
        // Named on purpose, rmcp gets what was asked.
        assert_eq!(
            most(Some("warn,rmcp=debug"), "info"),
            Some(LevelFilter::DEBUG)
        );
        // An invalid RUST_LOG falls back to the default level.
        assert!(filter(Some("=="), "warn").to_string().contains("rmcp=warn"));
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(printable("plain ünïcödé 😀"), "plain ünïcödé 😀");
        assert_eq!(
            printable("a\nERROR forged\r\u{1b}[2K\u{202e}x"),
            "a\\nERROR forged\\r\\u{1b}[2K\\u{202e}x"
        );
    }
}
