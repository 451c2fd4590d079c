//! Asking the person behind an MCP client to approve an action, with elicitation (form mode).
//!
//! The form offers exactly the answers [`Scope`] knows plus *deny*; an answer outside the
//! form (an unknown choice, minutes out of range) is a denial, never a guess.
//!
//! Before protocol 2026-07-28 the gateway sends the client an `elicitation/create` request
//! while the call waits ([`asker_for`]). From 2026-07-28 on a server may not send requests to
//! its client: a call is then answered `input_required` with the same form under the key
//! [`INPUT_KEY`] and the question's id as `requestState`, and the client calls again with the
//! form's result ([`retry_for`]). A tool's own requests cannot be asked about that way (the
//! tool is running); they fall back to operators.

use std::future::Future;
use std::pin::Pin;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, InputRequest, InputRequiredResult, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use serde_json::json;

use crate::approval::{Asker, ClientAnswer, Question, Retry, Scope};

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

/// The key of the approval form in an `input_required` result and in the client's retry.
pub const INPUT_KEY: &str = "gatehouse_approval";

/// Whether the request is on a revision that forbids server-to-client requests.
fn modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_none_or(|version| version >= ProtocolVersion::V_2026_07_28)
}

/// Whether the client declared form elicitation (an elicitation capability that names
/// neither mode means forms, as before modes existed).
fn elicits_forms(capabilities: Option<ClientCapabilities>) -> bool {
    capabilities
        .and_then(|c| c.elicitation)
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
}

/// An asker for the request in `context`, if its client can be asked while the call waits: it
/// declared form elicitation, and its protocol revision lets the server send it a request.
pub fn asker_for(context: &RequestContext<RoleServer>) -> Option<ElicitingClient> {
    (elicits_forms(context.client_capabilities()) && !modern(context)).then(|| ElicitingClient {
        peer: context.peer.clone(),
    })
}

/// For a client that answers by calling again (2026-07-28 or later, form elicitation): its
/// answer when `request` is such a retry.
pub fn retry_for(
    context: &RequestContext<RoleServer>,
    request: &CallToolRequestParams,
    max_minutes: u32,
) -> Option<Retry> {
    if !modern(context) || !elicits_forms(context.client_capabilities()) {
        return None;
    }
    let Some(question) = &request.request_state else {
        return Some(Retry::Ask);
    };
    if !Question::is_id(question) {
        return Some(Retry::Refused(
            "the retry was refused: its requestState is not a question this gateway asked".into(),
        ));
    }
    let reply = request
        .input_responses
        .as_ref()
        .and_then(|responses| responses.get(INPUT_KEY))
        .ok_or_else(|| format!("the retry has no {INPUT_KEY} answer"))
        .and_then(|value| {
            serde_json::from_value::<ElicitResult>(value.clone())
                .map_err(|e| format!("the {INPUT_KEY} answer is not an elicitation result: {e}"))
        })
        .and_then(|result| read_result(&result, max_minutes));
    Some(Retry::Answer {
        question: question.clone(),
        reply,
    })
}

/// The `input_required` result that asks `prompt` and names `question` as the state the
/// client sends back.
pub fn input_required(question: String, prompt: String, max_minutes: u32) -> InputRequiredResult {
    let request = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: prompt,
        requested_schema: form(max_minutes),
    });
    let requests = [(INPUT_KEY.to_owned(), InputRequest::Elicitation(request))];
    InputRequiredResult::new(Some(requests.into_iter().collect()), Some(question))
}

/// What an elicitation result answers.
fn read_result(result: &ElicitResult, max_minutes: u32) -> Result<ClientAnswer, String> {
    match result.action {
        ElicitationAction::Accept => read_form(result.content.as_ref(), max_minutes),
        ElicitationAction::Decline => Ok(ClientAnswer::Deny),
        ElicitationAction::Cancel => Ok(ClientAnswer::Cancel),
        // A later revision's action this gateway does not know: not an approval.
        _ => Ok(ClientAnswer::Cancel),
    }
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
            read_result(&result, max_minutes)
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
