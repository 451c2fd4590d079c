//! The first look at an untrusted JSON-RPC message, before rmcp sees it: is it JSON, and is it a
//! JSON-RPC message a client may send? The transports answer a refusal with a JSON-RPC error
//! (id `null`) instead of dropping the message or answering in plain text, so every client gets
//! an error it can parse.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::Value;

/// JSON-RPC "parse error": the bytes are not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC "invalid request": JSON, but not a message we accept (also: too large).
pub const INVALID_REQUEST: i32 = -32600;

/// Why a message was refused: a JSON-RPC error code and a message saying what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (JSON-RPC error {code})")]
pub struct Refusal {
    pub code: i32,
    pub message: String,
}

impl Refusal {
    /// The JSON-RPC error response carrying this refusal.
    pub fn response(&self) -> Value {
        error_response(self.code, &self.message)
    }
}

/// Parses a whole client message (the HTTP transport's body). One parse decides both errors: a
/// syntax error is [`PARSE_ERROR`], a well-formed body that is not a client message is
/// [`INVALID_REQUEST`].
pub fn parse_client_message(bytes: &[u8]) -> Result<ClientJsonRpcMessage, Refusal> {
    serde_json::from_slice::<ClientJsonRpcMessage>(bytes).map_err(|error| {
        // serde stops at the first value of the wrong shape, before it reads the rest, so a
        // body that is not JSON at all (`4\x08`) would come out as a data error. Only on this
        // error path is the syntax checked on its own, so that it is a parse error after all.
        if error.classify() == serde_json::error::Category::Data
            && let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        {
            return classify(syntax);
        }
        classify(error)
    })
}

/// Checks only that `line` is one JSON value, without building it (the stdio transport: rmcp
/// parses the message itself right after).
pub fn check_syntax(line: &str) -> Result<(), Refusal> {
    serde_json::from_str::<serde::de::IgnoredAny>(line)
        .map(drop)
        .map_err(classify)
}

fn classify(error: serde_json::Error) -> Refusal {
    let (code, what) = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            (PARSE_ERROR, "parse error")
        }
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            (INVALID_REQUEST, "invalid JSON-RPC request")
        }
    };
    Refusal {
        code,
        message: format!("{what}: {error}"),
    }
}

/// `{"jsonrpc":"2.0","id":null,"error":{"code":…,"message":…}}`.
pub fn error_response(code: i32, message: &str) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
}
