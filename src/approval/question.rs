//! A question put to a person, and the answers it can get.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::Binding;

/// One `ask` decision waiting for a person.
#[derive(Debug, Clone)]
pub struct Question {
    /// `q-` and 16 hex digits: what an operator types to answer it.
    pub id: String,
    pub call_id: String,
    /// The MCP session (or stdio connection) the call belongs to: what *approve for this
    /// session* covers.
    pub session: String,
    pub principal: String,
    pub tool: String,
    /// `call`, `http`, `fs`, `socket` or `config`.
    pub phase: String,
    /// What would be done, in a line (`call fetch_fetch {"url": …}`, `GET https://…`): never a
    /// query string or a header, which may carry credentials.
    pub action: String,
    /// The policy's `ask` messages.
    pub messages: Vec<String>,
    pub binding: Binding,
}

impl Question {
    /// A question with a fresh id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        call_id: &str,
        session: &str,
        principal: &str,
        tool: &str,
        phase: &str,
        action: String,
        messages: Vec<String>,
        binding: Binding,
    ) -> Question {
        let id = format!("q-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        Question {
            id,
            call_id: call_id.to_owned(),
            session: session.to_owned(),
            principal: principal.to_owned(),
            tool: tool.to_owned(),
            phase: phase.to_owned(),
            action,
            messages,
            binding,
        }
    }

    /// Whether `text` has the shape of a question id (`q-` and 16 lower-case hex digits): a
    /// client echoes ids back, so one that does not is refused before it is used or logged.
    pub fn is_id(text: &str) -> bool {
        text.strip_prefix("q-").is_some_and(|hex| {
            hex.len() == 16
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    }

    /// The text the person reads: who wants to do what, and why the policy asks.
    pub fn prompt(&self) -> String {
        let why = if self.messages.is_empty() {
            String::new()
        } else {
            format!("\nWhy you are asked: {}", self.messages.join("; "))
        };
        format!(
            "Gatehouse asks you to approve an action.\nCaller: {}\nTool: {}\nAction ({}): {}{why}\nQuestion: {}",
            self.principal, self.tool, self.phase, self.action, self.id
        )
    }
}

/// What an approval covers beyond the action it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "minutes")]
pub enum Scope {
    /// This one action (for a question that waited for an operator: the next identical one).
    Once,
    /// The same action again in the same session, until it ends.
    Session,
    /// The same action again, by the same principal, for this many minutes.
    Minutes(u32),
}

impl Scope {
    /// `once`, `session` or `minutes:N`, as the store keeps it.
    pub fn to_text(self) -> String {
        match self {
            Scope::Once => "once".into(),
            Scope::Session => "session".into(),
            Scope::Minutes(minutes) => format!("minutes:{minutes}"),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Once => f.write_str("once"),
            Scope::Session => f.write_str("for this session"),
            Scope::Minutes(minutes) => write!(f, "for {minutes} min"),
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    /// `once`, `session`, `minutes:N` or a bare number of minutes (the command line's
    /// `--for 10`).
    fn from_str(text: &str) -> Result<Scope, String> {
        let minutes = |n: &str| {
            n.parse::<u32>()
                .ok()
                .filter(|m| *m > 0)
                .map(Scope::Minutes)
                .ok_or_else(|| format!("{n:?} is not a number of minutes (1 or more)"))
        };
        match text {
            "once" => Ok(Scope::Once),
            "session" => Ok(Scope::Session),
            other => match other.strip_prefix("minutes:") {
                Some(n) => minutes(n),
                None if other.bytes().all(|b| b.is_ascii_digit()) => minutes(other),
                None => Err(format!(
                    "unknown approval scope {other:?} (once, session, or a number of minutes)"
                )),
            },
        }
    }
}

/// Who gave an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Responder {
    /// The person behind the MCP client, through elicitation.
    Client,
    /// An operator on the command line (their user name).
    Operator(String),
    /// An earlier answer's grant (the question it answered).
    Grant(String),
    /// Nobody answered in time.
    Timeout,
    /// Nobody could be asked.
    Nobody,
}

impl Responder {
    /// How the store keeps it: `client`, `operator:NAME`, `grant:ID`, `timeout`, `nobody`.
    pub fn to_text(&self) -> String {
        match self {
            Responder::Client => "client".into(),
            Responder::Operator(name) => format!("operator:{name}"),
            Responder::Grant(question) => format!("grant:{question}"),
            Responder::Timeout => "timeout".into(),
            Responder::Nobody => "nobody".into(),
        }
    }

    /// `client`, `operator`, `grant`, `timeout` or `nobody`: a bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Responder::Client => "client",
            Responder::Operator(_) => "operator",
            Responder::Grant(_) => "grant",
            Responder::Timeout => "timeout",
            Responder::Nobody => "nobody",
        }
    }

    pub fn from_text(text: &str) -> Responder {
        match text.split_once(':') {
            Some(("operator", name)) => Responder::Operator(name.to_owned()),
            Some(("grant", question)) => Responder::Grant(question.to_owned()),
            _ => match text {
                "client" => Responder::Client,
                "timeout" => Responder::Timeout,
                _ => Responder::Nobody,
            },
        }
    }
}

/// The answer to a question: approved (with what it covers) or denied (with why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub approved: bool,
    /// For an approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    pub by: Responder,
    /// For a denial: what the agent and the log are told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Answer {
    pub fn approved(scope: Scope, by: Responder) -> Answer {
        Answer {
            approved: true,
            scope: Some(scope),
            by,
            reason: None,
        }
    }

    pub fn denied(by: Responder, reason: String) -> Answer {
        Answer {
            approved: false,
            scope: None,
            by,
            reason: Some(reason),
        }
    }

    /// The store failed: nobody can approve, so the action is denied (fail closed).
    pub fn unavailable(reason: String) -> Answer {
        Answer::denied(Responder::Nobody, format!("approval unavailable: {reason}"))
    }

    /// `approve` or `deny`: the verdict of its audit entry.
    pub fn label(&self) -> &'static str {
        if self.approved { "approve" } else { "deny" }
    }
}

/// Where a question stands in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionStatus {
    Pending,
    Approved,
    Denied,
    /// Nobody answered before it expired.
    Expired,
}

impl QuestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionStatus::Pending => "pending",
            QuestionStatus::Approved => "approved",
            QuestionStatus::Denied => "denied",
            QuestionStatus::Expired => "expired",
        }
    }
}

/// A question as the store holds it, for `gatehouse approvals list`.
#[derive(Debug, Clone, Serialize)]
pub struct StoredQuestion {
    pub id: String,
    /// RFC 3339, UTC.
    pub asked: String,
    pub expires: String,
    pub status: QuestionStatus,
    pub call_id: String,
    pub principal: String,
    pub tool: String,
    pub phase: String,
    pub action: String,
    pub messages: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_from_what_an_operator_types() {
        assert_eq!("once".parse(), Ok(Scope::Once));
        assert_eq!("session".parse(), Ok(Scope::Session));
        assert_eq!("10".parse(), Ok(Scope::Minutes(10)));
        assert_eq!("minutes:5".parse(), Ok(Scope::Minutes(5)));
        assert!("0".parse::<Scope>().is_err());
        assert!(
            "forever"
                .parse::<Scope>()
                .unwrap_err()
                .contains("unknown approval scope")
        );
        for scope in [Scope::Once, Scope::Session, Scope::Minutes(7)] {
            assert_eq!(scope.to_text().parse(), Ok(scope));
        }
    }

    #[test]
    fn only_the_shape_of_an_id_this_gateway_makes_is_an_id() {
        let binding = Binding("0".repeat(64));
        let question = Question::new("c", "s", "p", "t", "call", "a".into(), vec![], binding);
        assert!(Question::is_id(&question.id), "{}", question.id);
        for bad in [
            "",
            "q-",
            "q-0123456789abcdeF",
            "q-0123456789abcdef0",
            "x-0123456789abcdef",
            "q-0123456789abcde\n",
        ] {
            assert!(!Question::is_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn responders_survive_the_store() {
        for responder in [
            Responder::Client,
            Responder::Operator("alice".into()),
            Responder::Grant("q-1".into()),
            Responder::Timeout,
            Responder::Nobody,
        ] {
            assert_eq!(Responder::from_text(&responder.to_text()), responder);
        }
    }
}
