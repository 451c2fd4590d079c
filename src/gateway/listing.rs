//! `tools/list`: which tools a caller may see (phase `list`), recorded as one audit entry.

use super::record::now;
use super::{Gateway, Session, Tool};
use crate::audit::NewEntry;
use crate::auth::Caller;
use crate::policy::{self, Phase};

impl Gateway {
    /// The tools a caller may see in `session` (phase `list`), in name order. The listing is
    /// recorded as one audit entry; if it cannot be, the caller sees nothing. Listing decisions
    /// read the session but are not part of its history.
    pub async fn tools(&self, caller: &Caller, session: &Session) -> Vec<Tool> {
        let time = now();
        let catalog = self.catalog();
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        let mut revision = None;
        let session_document = session.document();
        for tool in catalog.tools.values() {
            let input = policy::input::list_input(
                &time,
                caller,
                session_document.clone(),
                &tool.policy_doc(),
            );
            let decision = self.policy.decide(Phase::List, &input);
            self.metrics.decided(
                Phase::List.as_str(),
                decision.is_allowed(),
                tool.name(),
                std::time::Duration::from_micros(decision.eval_micros),
            );
            revision.get_or_insert_with(|| decision.revision.clone());
            if decision.is_allowed() {
                visible.push(tool.clone());
            } else {
                hidden.push(serde_json::json!({"tool": tool.name(), "reasons": decision.reasons}));
            }
        }
        let mut entry = NewEntry::new(
            "list",
            "allow",
            serde_json::to_value(caller).unwrap_or_default(),
            serde_json::json!({"phase": "list", "time": time, "caller": caller, "session": {"id": session.id()}}),
        );
        entry.policy_revision = revision;
        entry.obligations = serde_json::json!({
            "visible": visible.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "hidden": hidden,
        });
        match self.sink.append(entry).await {
            Ok(_) => visible,
            Err(error) => {
                tracing::error!(%error, "cannot record a tool listing; listing nothing");
                Vec::new()
            }
        }
    }
}
