//! Asking the person behind an MCP client to approve an action, with elicitation (form mode).
//!
//! The form offers exactly the answers [`Scope`] knows plus *deny*; an answer outside the
//! form (an unknown choice, minutes out of range) is a denial, never a guess. Protocol
//! revisions from 2026-07-28 on forbid server-to-client requests, so their clients cannot be
//! asked this way ([`asker_for`] says so and the approval falls back to operators).

use std::future::Future;
use std::pin::Pin;

use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema, ProtocolVersion};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::{Peer, RoleServer};
use serde_json::json;

use crate::approval::{Asker, ClientAnswer, Scope};

/// The choices of the approval form, as sent (`const`) and shown (`title`).
const CHOICES: [(&str, &str); 4] = [
    ("approve_once", "Approve once"),
    ("approve_session", "Approve for this session"),
    ("approve_minutes", "Approve for N minutes"),
    ("deny", "Deny"),
];

/// Asks through one client's MCP session.
pub struct ElicitingClient {
    peer: Peer<RoleServer>,
}

/// An asker for the request in `context`, if its client can be asked: it declared form
/// elicitation, and the protocol revision allows the server to send it a request.
pub fn asker_for(context: &RequestContext<RoleServer>) -> Option<ElicitingClient> {
    let modern = context
        .protocol_version()
        .is_none_or(|version| version >= ProtocolVersion::V_2026_07_28);
    let can_elicit = context
        .peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form);
    (can_elicit && !modern).then(|| ElicitingClient {
        peer: context.peer.clone(),
    })
}

/// The form: a choice and, for *approve for N minutes*, the number.
fn form(max_minutes: u32) -> ElicitationSchema {
    let one_of: Vec<_> = CHOICES
        .iter()
        .map(|(value, title)| json!({"const": value, "title": title}))
        .collect();
    let schema = json!({
        "type": "object",
        "properties": {
            "decision": {"type": "string", "title": "Your answer", "oneOf": one_of},
            "minutes": {
                "type": "integer",
                "title": "Minutes (for \"Approve for N minutes\")",
                "minimum": 1,
                "maximum": max_minutes,
                "default": 10.min(max_minutes),
            },
        },
        "required": ["decision"],
    });
    let serde_json::Value::Object(schema) = schema else {
        unreachable!("the form is an object")
    };
    ElicitationSchema::from_json_schema(schema).expect("the approval form is a valid schema")
}

/// What an accepted form says.
fn read_form(
    content: Option<&serde_json::Value>,
    max_minutes: u32,
) -> Result<ClientAnswer, String> {
    let content = content.ok_or("the client accepted without an answer")?;
    let decision = content["decision"].as_str().unwrap_or_default();
    Ok(match decision {
        "approve_once" => ClientAnswer::Approve(Scope::Once),
        "approve_session" => ClientAnswer::Approve(Scope::Session),
        "approve_minutes" => {
            let minutes = content["minutes"]
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| (1..=max_minutes).contains(m))
                .ok_or_else(|| {
                    format!(
                        "approve for N minutes needs 1 to {max_minutes} minutes, got {}",
                        content["minutes"]
                    )
                })?;
            ClientAnswer::Approve(Scope::Minutes(minutes))
        }
        "deny" => ClientAnswer::Deny,
        other => {
            return Err(format!(
                "the client answered {other:?}, which is not one of the choices"
            ));
        }
    })
}

impl Asker for ElicitingClient {
    fn ask<'a>(
        &'a self,
        prompt: String,
        max_minutes: u32,
    ) -> Pin<Box<dyn Future<Output = Result<ClientAnswer, String>> + Send + 'a>> {
        Box::pin(async move {
            let request = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: prompt,
                requested_schema: form(max_minutes),
            };
            let result = self
                .peer
                .create_elicitation(request)
                .await
                .map_err(|e| e.to_string())?;
            match result.action {
                ElicitationAction::Accept => read_form(result.content.as_ref(), max_minutes),
                ElicitationAction::Decline => Ok(ClientAnswer::Deny),
                ElicitationAction::Cancel => Ok(ClientAnswer::Cancel),
                // A later revision's action this gateway does not know: not an approval.
                _ => Ok(ClientAnswer::Cancel),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_offers_every_scope_and_deny() {
        let schema = serde_json::to_value(form(60)).unwrap();
        let choices: Vec<&str> = schema["properties"]["decision"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["const"].as_str().unwrap())
            .collect();
        assert_eq!(
            choices,
            ["approve_once", "approve_session", "approve_minutes", "deny"]
        );
        assert_eq!(schema["properties"]["minutes"]["maximum"], 60);
    }

    #[test]
    fn answers_outside_the_form_are_refused() {
        let read = |v: serde_json::Value| read_form(Some(&v), 60);
        assert_eq!(
            read(json!({"decision": "approve_session"})),
            Ok(ClientAnswer::Approve(Scope::Session))
        );
        assert_eq!(
            read(json!({"decision": "approve_minutes", "minutes": 5})),
            Ok(ClientAnswer::Approve(Scope::Minutes(5)))
        );
        assert!(read(json!({"decision": "approve_minutes", "minutes": 61})).is_err());
        assert!(read(json!({"decision": "approve_minutes"})).is_err());
        assert!(read(json!({"decision": "approve_forever"})).is_err());
        assert!(read_form(None, 60).is_err());
    }
}
