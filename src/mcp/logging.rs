//! MCP logging: the level a client sets with `logging/setLevel`, and the lines its calls'
//! tools log sent back to it as `notifications/message`, in the order they were logged.
//!
//! Until the client sets a level it receives no log notifications. The notifications of a call
//! are all sent before the call is answered.
// rmcp marks MCP logging deprecated (SEP-2577), but the protocol revisions clients speak today
// have it, and the conformance suite tests it.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::{Peer, RoleServer};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::gateway::{LogLevel, LogObserver, ToolLog};

/// The lowest level a session's client wants to hear, once it has said.
#[derive(Clone, Default)]
pub struct SessionLevel(Arc<Mutex<Option<LoggingLevel>>>);

impl SessionLevel {
    pub fn set(&self, level: LoggingLevel) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(level);
    }

    fn get(&self) -> Option<LoggingLevel> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The forwarder of one call's log lines to `peer`, or `None` while the client has set no
    /// level.
    pub fn forwarder(&self, peer: Peer<RoleServer>, tool: &str) -> Option<Forwarder> {
        let threshold = severity(self.get()?);
        let (sender, mut receiver) = mpsc::unbounded_channel::<LoggingMessageNotificationParam>();
        // One task per call keeps the lines in order; the host bounds how many there are.
        let task = tokio::spawn(async move {
            while let Some(param) = receiver.recv().await {
                if let Err(error) = peer.notify_logging_message(param).await {
                    tracing::debug!(%error, "cannot send a log notification; the client is gone");
                    break;
                }
            }
        });
        let tool = tool.to_owned();
        // The observer holds the channel weakly: once the call is over, dropping the forwarder's
        // sender closes it, whoever still holds a copy of the observer.
        let weak = sender.downgrade();
        let observer: LogObserver = Arc::new(move |record: &ToolLog| {
            let param = notification(&tool, record);
            if severity(param.level) >= threshold
                && let Some(sender) = weak.upgrade()
            {
                let _ = sender.send(param);
            }
        });
        Some(Forwarder {
            observer,
            sender,
            task,
        })
    }
}

/// One call's log forwarding: hand `observer` to the gateway, then [`Forwarder::flush`].
pub struct Forwarder {
    pub observer: LogObserver,
    sender: mpsc::UnboundedSender<LoggingMessageNotificationParam>,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Waits until every line of the finished call was sent.
    pub async fn flush(self) {
        drop(self.sender);
        let _ = self.task.await;
    }
}

/// MCP levels have no `trace`: it is sent as `debug`.
fn mcp_level(level: LogLevel) -> LoggingLevel {
    match level {
        LogLevel::Trace | LogLevel::Debug => LoggingLevel::Debug,
        LogLevel::Info => LoggingLevel::Info,
        LogLevel::Warn => LoggingLevel::Warning,
        LogLevel::Error => LoggingLevel::Error,
        LogLevel::Critical => LoggingLevel::Critical,
    }
}

/// The syslog order of MCP levels (RFC 5424), least severe first.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The notification of one record: logger = the tool, data = `{context, message}`.
fn notification(tool: &str, record: &ToolLog) -> LoggingMessageNotificationParam {
    let (level, data) = match record {
        ToolLog::Line(line) => (
            mcp_level(line.level),
            json!({"context": line.context, "message": line.message}),
        ),
        ToolLog::Dropped { lines, bytes } => (
            LoggingLevel::Warning,
            json!({"message": format!("{lines} log lines ({bytes} bytes) over the call's bounds were dropped")}),
        ),
    };
    LoggingMessageNotificationParam::new(level, data).with_logger(tool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ToolLogLine;

    #[test]
    fn levels_map_and_order_as_syslog() {
        assert!(severity(mcp_level(LogLevel::Warn)) > severity(LoggingLevel::Info));
        assert!(severity(mcp_level(LogLevel::Trace)) == severity(LoggingLevel::Debug));
        let record = ToolLog::Line(ToolLogLine {
            level: LogLevel::Critical,
            context: "net".into(),
            message: "down".into(),
        });
        let param = notification("t_f", &record);
        assert_eq!(param.level, LoggingLevel::Critical);
        assert_eq!(param.logger.as_deref(), Some("t_f"));
        assert_eq!(param.data, json!({"context": "net", "message": "down"}));
    }
}
