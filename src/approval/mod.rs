//! A person in the loop: what happens when a policy answers `ask` instead of allow or deny.
//!
//! A decision of phase `call`, `http`, `fs`, `socket` or `config` whose package yields `ask`
//! messages (and no `deny` message) becomes a [`Question`]. It is answered, in this order, by:
//!
//! 1. a **grant** an earlier answer left: approval *for this session* or *for N minutes* of the
//!    very same action ([`Binding`]), or an operator's *approve once* of a question that had to
//!    wait for them. A grant is used here without asking anyone;
//! 2. the **person behind the MCP client**, through elicitation ([`Asker`]), when the client
//!    can elicit — or an **operator** on the command line (`gatehouse approvals approve|deny
//!    ID`), whichever answers first, within `[approvals] timeout_secs` (then: deny);
//!    A client on protocol 2026-07-28 or later, which forbids a server's requests to its
//!    client, is asked about a *call* by answering it `input_required` (MCP's multi round-trip
//!    requests): the question is stored, the client shows the form and calls again with its
//!    answer and the question's id as `requestState` ([`Retry`]). The id is only a handle:
//!    the answer counts for a pending question of the same [`Binding`] alone;
//! 3. nobody, when the client cannot elicit: the action is denied at once with an error that
//!    names the question, which waits `[approvals] park_minutes` for an operator. An operator's
//!    approval then grants the next identical call.
//!
//! **What an approval covers.** A [`Binding`] is the SHA-256 of the canonical JSON of the
//! principal, the tool, the component digest, the phase and the phase's input minus what
//! changes from one identical action to the next (call id, time, session, trace, the caller's
//! token claims, the addresses a host name resolved to). A changed argument, URL or path is a
//! new question.
//!
//! **Where it is kept.** Questions and grants live in a SQLite file of their own
//! ([`ApprovalStore`], default `gatehouse-approvals.db`), not in the audit log (which is
//! append-only and keeps its own record of each question and answer) nor in memory only: a
//! restart does not forget "approve for 10 minutes", and the command line answers the running
//! gateway's questions through the same file.

mod binding;
mod question;
mod settings;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use binding::Binding;
pub use question::{Answer, Question, QuestionStatus, Responder, Scope, StoredQuestion};
pub use settings::{ApprovalSettings, DEFAULT_APPROVALS_FILE};
pub use store::{ApprovalError, ApprovalStore};

/// What the person behind the client answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAnswer {
    Approve(Scope),
    /// They chose *deny*, or declined the question.
    Deny,
    /// They dismissed the question without answering.
    Cancel,
}

/// A way to ask the person behind the MCP client (elicitation). The transport implements it;
/// this module only knows that a question can be asked and answered.
pub trait Asker: Send + Sync {
    /// Asks `prompt` with the answers [`Scope`] offers (approve once, for this session, for N
    /// minutes up to `max_minutes`) and deny. `Err` says why nobody could be asked.
    fn ask<'a>(
        &'a self,
        prompt: String,
        max_minutes: u32,
    ) -> Pin<Box<dyn Future<Output = Result<ClientAnswer, String>> + Send + 'a>>;
}

/// A call from a client that answers questions by calling again (MCP 2026-07-28).
#[derive(Debug, Clone)]
pub enum Retry {
    /// A first call: a question is put by answering `input_required`.
    Ask,
    /// A retry with the answer to question `question` (the `requestState` echoed back), or why
    /// the answer could not be read.
    Answer {
        question: String,
        reply: Result<ClientAnswer, String>,
    },
    /// A retry whose `requestState` is no question id: it is denied, and what was sent back
    /// is used nowhere (no key, no log, no record).
    Refused(String),
}

/// What became of a question put to a client that answers by calling again.
#[derive(Debug, Clone)]
pub enum Resolution {
    Answered(Answer),
    /// Stored and waiting: the client must show the question and call again with its answer.
    InputRequired,
}

/// Human approval for one gateway: its settings and its store, opened when the first question
/// is asked (a gateway whose policy never asks creates no file).
pub struct Approvals {
    store: OnceLock<Result<ApprovalStore, String>>,
    settings: ApprovalSettings,
}

/// How often a question that waits polls the store for an operator's answer.
const OPERATOR_POLL: Duration = Duration::from_millis(200);

impl Approvals {
    /// Approvals with these settings; `Err` says what is wrong with them.
    pub fn new(settings: ApprovalSettings) -> Result<Arc<Approvals>, ApprovalError> {
        settings.validate().map_err(ApprovalError::Settings)?;
        Ok(Arc::new(Approvals {
            store: OnceLock::new(),
            settings,
        }))
    }

    pub fn settings(&self) -> &ApprovalSettings {
        &self.settings
    }

    /// The store, opened (or created) on first use.
    pub fn store(&self) -> Result<&ApprovalStore, String> {
        self.store
            .get_or_init(|| ApprovalStore::open(&self.settings.path()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Answers `question`: with a grant if one covers it, else by asking `asker` (and the
    /// operators) until the timeout. Every way this can fail is a denial, with its reason.
    pub async fn resolve(&self, question: &Question, asker: Option<&dyn Asker>) -> Answer {
        let store = match self.store() {
            Ok(store) => store,
            Err(error) => return Answer::unavailable(error),
        };
        match store.take_grant(question) {
            Ok(Some(grant)) => return grant,
            Ok(None) => {}
            Err(error) => return Answer::unavailable(format!("cannot read approvals: {error}")),
        }
        let Some(asker) = asker else {
            let parked = self.settings.park();
            if let Err(error) = store.park(question, parked) {
                return Answer::unavailable(format!("cannot record the question: {error}"));
            }
            return Answer::denied(
                Responder::Nobody,
                format!(
                    "approval required: this client cannot be asked (it does not support MCP \
                     elicitation), so question {id} waits for an operator for {minutes} min: \
                     `gatehouse approvals approve {id}` (or `deny`), then call again",
                    id = question.id,
                    minutes = parked.as_secs() / 60,
                ),
            );
        };
        let timeout = self.settings.timeout();
        if let Err(error) = store.insert(question, timeout) {
            return Answer::unavailable(format!("cannot record the question: {error}"));
        }
        let prompt = question.prompt();
        let answer = tokio::select! {
            answer = asker.ask(prompt, self.settings.max_minutes) => from_client(question, answer),
            answer = operator_answer(store, question) => answer,
            () = tokio::time::sleep(timeout) => Answer::denied(
                Responder::Timeout,
                format!("nobody answered question {} within {} s", question.id, timeout.as_secs()),
            ),
        };
        // The first answer stored wins: an operator may have answered while the client did.
        match store.answer(question, &answer) {
            Ok(stored) => stored,
            Err(error) => Answer::unavailable(format!("cannot record the answer: {error}")),
        }
    }
}

impl Approvals {
    /// Puts `question` to a client that answers by calling again: a grant answers it at once;
    /// otherwise it is stored for `[approvals] timeout_secs` and the client must call again.
    pub fn ask_by_retry(&self, question: &Question) -> Resolution {
        let store = match self.store() {
            Ok(store) => store,
            Err(error) => return Resolution::Answered(Answer::unavailable(error)),
        };
        match store.take_grant(question) {
            Ok(Some(grant)) => Resolution::Answered(grant),
            Ok(None) => match store.insert(question, self.settings.timeout()) {
                Ok(()) => Resolution::InputRequired,
                Err(error) => Resolution::Answered(Answer::unavailable(format!(
                    "cannot record the question: {error}"
                ))),
            },
            Err(error) => Resolution::Answered(Answer::unavailable(format!(
                "cannot read approvals: {error}"
            ))),
        }
    }

    /// The client's answer, sent with its retry, to the question `question` took the id of.
    /// It counts only for a question still pending for the same action by the same principal:
    /// the id comes back from the client and proves nothing by itself.
    pub fn answer_by_retry(
        &self,
        question: &Question,
        answer: Result<ClientAnswer, String>,
    ) -> Answer {
        let store = match self.store() {
            Ok(store) => store,
            Err(error) => return Answer::unavailable(error),
        };
        match store.pending_binding(&question.id) {
            Ok(Some(binding)) if binding == question.binding => {}
            Ok(Some(_)) => {
                return Answer::denied(
                    Responder::Nobody,
                    format!(
                        "the answer sent is for question {}, which asked about another action",
                        question.id
                    ),
                );
            }
            Ok(None) => {
                return Answer::denied(
                    Responder::Nobody,
                    format!(
                        "question {} is not waiting for an answer (unknown, answered or expired); call again without requestState to be asked again",
                        question.id
                    ),
                );
            }
            Err(error) => return Answer::unavailable(format!("cannot read approvals: {error}")),
        }
        let answer = from_client(question, answer);
        match store.answer(question, &answer) {
            Ok(stored) => stored,
            Err(error) => Answer::unavailable(format!("cannot record the answer: {error}")),
        }
    }
}

/// The answer a client's reply gives.
fn from_client(question: &Question, reply: Result<ClientAnswer, String>) -> Answer {
    match reply {
        Ok(ClientAnswer::Approve(scope)) => Answer::approved(scope, Responder::Client),
        Ok(ClientAnswer::Deny) => {
            Answer::denied(Responder::Client, "the person asked denied it".into())
        }
        Ok(ClientAnswer::Cancel) => Answer::denied(
            Responder::Client,
            "the person asked dismissed the question".into(),
        ),
        Err(error) => Answer::denied(
            Responder::Nobody,
            format!(
                "approval required, but the client could not be asked ({error}); an operator can answer question {id}: `gatehouse approvals approve {id}`",
                id = question.id
            ),
        ),
    }
}

/// Waits until an operator answers `question` in `store`.
async fn operator_answer(store: &ApprovalStore, question: &Question) -> Answer {
    loop {
        tokio::time::sleep(OPERATOR_POLL).await;
        match store.answered(&question.id) {
            Ok(Some(answer)) => return answer,
            Ok(None) => {}
            Err(error) => return Answer::unavailable(format!("cannot read approvals: {error}")),
        }
    }
}
