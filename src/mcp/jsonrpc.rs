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
            && let Err(syntax) = serde_json::from_slice::<AnyJson>(bytes)
        {
            return classify(syntax);
        }
        classify(error)
    })
}

/// Checks only that `line` is one JSON value that serde_json can read, without building it (the
/// stdio transport: rmcp parses the message itself right after). Numbers are read, not just
/// skipped: `1e999` is JSON by its grammar but beyond f64, which serde_json refuses when it
/// builds the message; passing it on would have rmcp drop the line without an answer.
pub fn check_syntax(line: &str) -> Result<(), Refusal> {
    serde_json::from_str::<AnyJson>(line)
        .map(drop)
        .map_err(classify)
}

/// Any JSON value, read the way serde_json reads values (numbers parsed and range-checked,
/// strings unescaped, nesting limited) and dropped as it is read.
struct AnyJson;

impl<'de> serde::Deserialize<'de> for AnyJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyJsonVisitor)
    }
}

struct AnyJsonVisitor;

impl<'de> serde::de::Visitor<'de> for AnyJsonVisitor {
    type Value = AnyJson;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_i64<E>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_u64<E>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_f64<E>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_str<E>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_unit<E>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        while map.next_entry::<AnyJson, AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
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
