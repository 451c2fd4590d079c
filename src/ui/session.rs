//! Browser sessions of the web view: the login form trades a credential for an opaque random
//! token kept here (the cookie never holds the API key or JWT), and each session has its own
//! CSRF token that every action must echo in a header.
//!
//! Tokens are looked up and compared by their SHA-256, as API keys are: the comparison then
//! leaks nothing about the token itself through its timing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::settings::Role;

/// The session cookie's name.
pub const COOKIE: &str = "gatehouse_ui";
/// The header an action carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from login; then the auditor logs in again.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; the oldest goes first (so a flood of logins cannot grow memory).
const MAX_SESSIONS: usize = 1024;

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: String,
    pub role: Role,
    /// Sent to the page (`/ui/api/session`), required back on every POST.
    pub csrf: String,
    created: Instant,
}

/// The live sessions, by the SHA-256 of their token.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes as hex.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for `principal`; its token, for the cookie.
    pub fn open(&self, principal: &str, role: Role) -> Result<String, getrandom::Error> {
        let token = random_token()?;
        let session = Session {
            principal: principal.to_owned(),
            role,
            csrf: random_token()?,
            created: Instant::now(),
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, s| s.created.elapsed() < LIFETIME);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(digest(&token), session);
        Ok(token)
    }

    /// The live session of `token`, if any.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let key = digest(token);
        match live.get(&key) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub fn close(&self, token: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&digest(token));
    }
}

/// Whether a request's CSRF header matches its session's token (`expected`). Compared by
/// digest, so the time taken says nothing about how much of the token was right.
pub fn csrf_matches(expected: &str, header: Option<&str>) -> bool {
    header.is_some_and(|sent| digest(sent.trim()) == digest(expected))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The `Set-Cookie` value of a new session: HttpOnly (no script reads it), SameSite=Strict
/// (no other site's page sends it), scoped to `/ui`, and Secure unless the page is served
/// over plain HTTP on a loopback address.
pub fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_only_until_closed() {
        let sessions = Sessions::default();
        let token = sessions.open("alice", Role::Auditor).unwrap();
        assert_eq!(token.len(), 64);
        let session = sessions.get(&token).unwrap();
        assert_eq!(
            (session.principal.as_str(), session.role),
            ("alice", Role::Auditor)
        );
        assert_ne!(
            session.csrf, token,
            "the CSRF token is not the session token"
        );
        assert!(sessions.get("not-a-token").is_none());
        sessions.close(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn tokens_are_fresh_each_time() {
        let sessions = Sessions::default();
        let a = sessions.open("alice", Role::Auditor).unwrap();
        let b = sessions.open("alice", Role::Auditor).unwrap();
        assert_ne!(a, b);
        assert_ne!(
            sessions.get(&a).unwrap().csrf,
            sessions.get(&b).unwrap().csrf
        );
    }

    #[test]
    fn the_session_count_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.open("alice", Role::Auditor).unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.open("alice", Role::Auditor).unwrap();
        }
        assert!(sessions.get(&first).is_none(), "the oldest went first");
        assert_eq!(sessions.live.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        let sessions = Sessions::default();
        let token = sessions.open("alice", Role::Auditor).unwrap();
        let session = sessions.get(&token).unwrap();
        assert!(csrf_matches(&session.csrf, Some(&session.csrf)));
        assert!(!csrf_matches(&session.csrf, None));
        assert!(!csrf_matches(&session.csrf, Some("")));
        assert!(!csrf_matches(&session.csrf, Some(&token)));
        assert!(!csrf_matches(&session.csrf, Some(&session.csrf[1..])));
    }

    #[test]
    fn cookies_are_parsed_and_set_with_their_protections() {
        assert_eq!(cookie("a=1; gatehouse_ui=abc; b=2", COOKIE), Some("abc"));
        assert_eq!(cookie("gatehouse_uix=abc", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
        let set = set_cookie("abc", true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("abc", false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
