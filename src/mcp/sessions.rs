//! Each streamable-HTTP session belongs to the principal that opened it.
//!
//! The caller is identified on every request (its API key, or `anonymous`), but rmcp routes a
//! request into whatever session its `Mcp-Session-Id` names. Without a binding, anyone who
//! learned another principal's session id could post into that session, read its stream or end
//! it. So the id the `initialize` response hands out is bound to the principal of that request,
//! and any later request naming it from another principal is answered as if the session did not
//! exist: 404, exactly rmcp's answer for an unknown session, so that a guessed or leaked id is
//! not even confirmed (a 403 would tell the caller that the id is live). An id without a binding
//! is refused the same way (fail closed). The binding is forgotten when rmcp ends the session
//! (DELETE, idle timeout, shutdown).
//!
//! All anonymous callers are one principal, so this separates keys from one another and from
//! anonymous callers, not one anonymous caller from another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use crate::auth::AuthenticatedPrincipal;

/// The header that names a session (case-insensitive in HTTP).
pub(super) const SESSION_HEADER: &str = "mcp-session-id";

/// Which principal opened each live session.
#[derive(Debug, Default)]
pub struct SessionOwners {
    owners: Mutex<HashMap<String, String>>,
}

impl SessionOwners {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal that opened `session`, if it is live.
    fn owner(&self, session: &str) -> Option<String> {
        self.lock().get(session).cloned()
    }

    fn bind(&self, session: &str, principal: &str) {
        self.lock().insert(session.to_owned(), principal.to_owned());
    }

    fn forget(&self, session: &str) {
        self.lock().remove(session);
    }
}

/// Refuses a request that names a session of another principal (or no live session), and
/// binds the session an `initialize` response opens to the principal that asked for it. Runs
/// after authentication, which put the principal in the request's extensions.
pub async fn bind_to_principal(
    State(owners): State<Arc<SessionOwners>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(principal) = request
        .extensions()
        .get::<AuthenticatedPrincipal>()
        .map(|p| p.principal.clone())
    else {
        // Unreachable behind `authenticate`; refuse rather than serve an unknown caller.
        tracing::error!("HTTP request without an authenticated principal refused");
        return unknown_session();
    };
    let named = request
        .headers()
        .get(SESSION_HEADER)
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    if let Some(session) = named {
        return match owners.owner(&session) {
            Some(owner) if owner == principal => next.run(request).await,
            owner => {
                tracing::warn!(
                    %principal,
                    owner = %owner.as_deref().unwrap_or("(no live session)"),
                    method = %request.method(),
                    "HTTP request refused: its Mcp-Session-Id is not a session of this principal; answered 404 as an unknown session"
                );
                unknown_session()
            }
        };
    }
    let response = next.run(request).await;
    if let Some(opened) = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        owners.bind(opened, &principal);
        tracing::debug!(%principal, "MCP session opened and bound to its principal");
    }
    response
}

/// rmcp's own answer to a request naming a session it does not know.
fn unknown_session() -> Response {
    (http::StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// rmcp's in-memory session manager, telling [`SessionOwners`] when a session ends: every end
/// (DELETE, idle timeout, the session's service stopping) goes through `close_session`.
pub struct OwnedSessions {
    inner: LocalSessionManager,
    owners: Arc<SessionOwners>,
}

impl OwnedSessions {
    pub fn new(owners: Arc<SessionOwners>) -> OwnedSessions {
        OwnedSessions {
            inner: LocalSessionManager::default(),
            owners,
        }
    }
}

impl SessionManager for OwnedSessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        self.owners.forget(id);
        closed
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_binding_is_forgotten_when_its_session_ends() {
        let owners = Arc::new(SessionOwners::default());
        let sessions = OwnedSessions::new(owners.clone());
        let (id, _transport) = sessions.create_session().await.unwrap();
        owners.bind(&id, "alice");
        let (other, _other_transport) = sessions.create_session().await.unwrap();
        owners.bind(&other, "bob");
        assert_eq!(owners.owner(&id).as_deref(), Some("alice"));
        sessions.close_session(&id).await.unwrap();
        assert_eq!(owners.owner(&id), None);
        assert_eq!(owners.owner(&other).as_deref(), Some("bob"));
    }
}
