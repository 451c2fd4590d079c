//! `wasi:logging/logging`: the lines a tool logs. Each goes to the gateway (which writes it to
//! its own log, the call's audit story and the MCP client, see [`HostGuard::log`]), bounded per
//! call so that a chatty or hostile tool cannot flood the log: past [`MAX_LOG_LINES`] lines or
//! [`MAX_LOG_BYTES`] bytes, lines are dropped and counted, and one `Dropped` record says how
//! many when the call ends.

use std::sync::Arc;

use wasmtime::component::HasData;

use super::bindings::wasi::logging::logging::{Host, Level};
use super::guard::{LogLevel, SharedGuard, ToolLog, ToolLogLine};
use crate::secrets::Secrets;

/// Lines a call may log.
pub const MAX_LOG_LINES: u64 = 100;
/// Bytes of context and message a call may log, all lines together.
pub const MAX_LOG_BYTES: u64 = 64 << 10;
/// Bytes of one line's message kept; the rest is cut (and counted as dropped bytes).
pub const MAX_LINE_BYTES: usize = 4 << 10;
/// Bytes of one line's context kept.
const MAX_CONTEXT_BYTES: usize = 256;

/// One call's logger: hands lines to the guard while the call is within its bounds.
pub struct ToolLogger {
    guard: SharedGuard,
    /// Brokered values are masked in every line, as in the tool's other output.
    secrets: Arc<Secrets>,
    lines: u64,
    bytes: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// The [`HasData`] marker under which [`ToolLogger`] is linked.
pub struct Logging;

impl HasData for Logging {
    type Data<'a> = &'a mut ToolLogger;
}

impl ToolLogger {
    pub fn new(guard: SharedGuard, secrets: Arc<Secrets>) -> ToolLogger {
        ToolLogger {
            guard,
            secrets,
            lines: 0,
            bytes: 0,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// Takes one line: kept (truncated to its per-line bounds) while the call's budget lasts,
    /// otherwise dropped and counted.
    pub fn write(&mut self, level: LogLevel, context: String, message: String) {
        let mask = |text: String| match self.secrets.mask_text(&text) {
            Some((masked, _)) => masked,
            None => text,
        };
        let (context, message) = (mask(context), mask(message));
        let (context, cut_context) = truncate(context, MAX_CONTEXT_BYTES);
        let (message, cut_message) = truncate(message, MAX_LINE_BYTES);
        self.dropped_bytes += (cut_context + cut_message) as u64;
        let size = (context.len() + message.len()) as u64;
        if self.lines >= MAX_LOG_LINES || self.bytes + size > MAX_LOG_BYTES {
            self.dropped_lines += 1;
            self.dropped_bytes += size;
            return;
        }
        self.lines += 1;
        self.bytes += size;
        self.guard.log(ToolLog::Line(ToolLogLine {
            level,
            context,
            message,
        }));
    }

    /// Ends the call's logging: reports what was dropped, once, if anything was.
    pub fn finish(&mut self) {
        if self.dropped_lines > 0 || self.dropped_bytes > 0 {
            self.guard.log(ToolLog::Dropped {
                lines: self.dropped_lines,
                bytes: self.dropped_bytes,
            });
            self.dropped_lines = 0;
            self.dropped_bytes = 0;
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary; returns it and the bytes cut.
fn truncate(mut text: String, max: usize) -> (String, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    (text, cut)
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> LogLevel {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        }
    }
}

impl Host for ToolLogger {
    fn log(&mut self, level: Level, context: String, message: String) {
        self.write(level.into(), context, message);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::host::guard::{HostGuard, HostRequest, HostVerdict};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<ToolLog>>);

    impl HostGuard for Recorder {
        fn decide(&self, _request: HostRequest) -> HostVerdict {
            HostVerdict::deny("not used")
        }
        fn refuse(&self, _request: HostRequest, reason: String) -> HostVerdict {
            HostVerdict::deny(reason)
        }
        fn log(&self, record: ToolLog) {
            self.0.lock().unwrap().push(record);
        }
    }

    #[test]
    fn lines_past_the_count_bound_are_dropped_and_reported_once() {
        let recorder = Arc::new(Recorder::default());
        let mut logger = ToolLogger::new(recorder.clone(), Arc::default());
        for i in 0..MAX_LOG_LINES + 5 {
            logger.write(LogLevel::Info, "ctx".into(), format!("line {i:03}"));
        }
        logger.finish();
        logger.finish();
        let records = recorder.0.lock().unwrap();
        assert_eq!(records.len() as u64, MAX_LOG_LINES + 1);
        assert_eq!(
            records.last(),
            Some(&ToolLog::Dropped {
                lines: 5,
                bytes: 5 * 11
            })
        );
    }

    #[test]
    fn long_lines_are_cut_and_the_byte_bound_holds() {
        let recorder = Arc::new(Recorder::default());
        let mut logger = ToolLogger::new(recorder.clone(), Arc::default());
        // "é" is two bytes: the cut must land on a character boundary.
        logger.write(LogLevel::Warn, String::new(), "é".repeat(MAX_LINE_BYTES));
        let mut kept_bytes = 0;
        for record in recorder.0.lock().unwrap().iter() {
            let ToolLog::Line(line) = record else {
                panic!("{record:?}")
            };
            assert_eq!(line.message.len(), MAX_LINE_BYTES);
            kept_bytes += line.message.len();
        }
        for _ in 0..MAX_LOG_LINES {
            logger.write(LogLevel::Info, String::new(), "x".repeat(MAX_LINE_BYTES));
        }
        logger.finish();
        let records = recorder.0.lock().unwrap();
        let total: usize = records
            .iter()
            .map(|r| match r {
                ToolLog::Line(line) => line.context.len() + line.message.len(),
                ToolLog::Dropped { .. } => 0,
            })
            .sum();
        assert!(kept_bytes > 0 && total as u64 <= MAX_LOG_BYTES, "{total}");
        assert!(matches!(records.last(), Some(ToolLog::Dropped { lines, .. }) if *lines > 0));
    }
}
