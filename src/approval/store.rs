//! The questions and grants file, shared by the gateway and `gatehouse approvals`.
//!
//! Every change is one statement or one transaction, so the gateway and the command line can
//! use the file at the same time (WAL, a busy timeout). The first answer stored wins: a
//! question's row changes from `pending` once, and a later answer gets the stored one back.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::question::{Answer, Question, QuestionStatus, Responder, Scope, StoredQuestion};

/// Why the store could not be used. Every one of them denies the action that asked.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(
        "cannot open the approvals file {path}: {source} (check that its directory exists and is writable, or set [approvals] path)"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Settings(String),
    #[error("approvals file: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no question {0} (see `gatehouse approvals list --all`)")]
    Unknown(String),
    #[error("question {id} is already {status}; it cannot be answered again")]
    Answered { id: String, status: &'static str },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY,
    asked_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    -- 1 when nobody could be asked: an operator's approval then grants the next identical call
    parked INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    call_id TEXT NOT NULL,
    session TEXT NOT NULL,
    principal TEXT NOT NULL,
    tool TEXT NOT NULL,
    phase TEXT NOT NULL,
    action TEXT NOT NULL,
    messages TEXT NOT NULL,
    binding TEXT NOT NULL,
    answered_ms INTEGER,
    answered_by TEXT,
    scope TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS questions_status ON questions (status, expires_ms);
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY,
    binding TEXT NOT NULL,
    -- NULL: any session of the principal (the binding names the principal)
    session TEXT,
    expires_ms INTEGER NOT NULL,
    -- NULL: until it expires
    uses_left INTEGER,
    scope TEXT NOT NULL,
    question TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_binding ON grants (binding, expires_ms);
";

/// How long a session grant is kept at most: sessions end long before (idle timeout), and
/// their ids are never reused, so this only bounds the file.
const SESSION_GRANT_MS: i64 = 24 * 60 * 60 * 1000;

/// How long answered questions stay listed (`gatehouse approvals list --all`).
const KEEP_ANSWERED_MS: i64 = 7 * 24 * 60 * 60 * 1000;

pub struct ApprovalStore {
    db: Mutex<Connection>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl ApprovalStore {
    /// Opens the file, creating it (mode 0600: its questions name what callers do) and its
    /// tables if needed.
    pub fn open(path: &Path) -> Result<ApprovalStore, ApprovalError> {
        let open = |source| ApprovalError::Open {
            path: path.to_owned(),
            source,
        };
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| open(rusqlite::Error::InvalidPath(format!("{e}").into())))?;
        }
        let db = Connection::open(path).map_err(open)?;
        db.busy_timeout(Duration::from_secs(5)).map_err(open)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        db.execute_batch(SCHEMA).map_err(open)?;
        let store = ApprovalStore { db: Mutex::new(db) };
        store.purge()?;
        Ok(store)
    }

    /// Forgets expired grants, and answered or expired questions older than a week: the
    /// audit log keeps every question and answer for good, so the file need not.
    fn purge(&self) -> Result<(), ApprovalError> {
        let now = now_ms();
        let db = self.db();
        db.execute("DELETE FROM grants WHERE expires_ms <= ?1", [now])?;
        db.execute(
            "DELETE FROM questions WHERE status != 'pending' AND asked_ms <= ?1",
            [now - KEEP_ANSWERED_MS],
        )?;
        Ok(())
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uses a grant that covers `question`, if one does: a single-use grant is used up.
    pub fn take_grant(&self, question: &Question) -> Result<Option<Answer>, ApprovalError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let grant = tx
            .query_row(
                "SELECT id, uses_left, scope, question FROM grants
                 WHERE binding = ?1 AND expires_ms > ?2 AND (session IS NULL OR session = ?3)
                   AND (uses_left IS NULL OR uses_left > 0)
                 ORDER BY uses_left IS NULL DESC, id LIMIT 1",
                params![question.binding.as_str(), now_ms(), question.session],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, uses_left, scope, origin)) = grant else {
            return Ok(None);
        };
        if uses_left.is_some() {
            tx.execute(
                "UPDATE grants SET uses_left = uses_left - 1 WHERE id = ?1",
                [id],
            )?;
        }
        tx.commit()?;
        let scope = scope.parse().unwrap_or(Scope::Once);
        Ok(Some(Answer::approved(scope, Responder::Grant(origin))))
    }

    /// Records `question` as pending for `wait`.
    pub fn insert(&self, question: &Question, wait: Duration) -> Result<(), ApprovalError> {
        self.insert_with(question, wait, false)
    }

    /// Records `question`, which nobody could be asked, as pending for `wait`.
    pub fn park(&self, question: &Question, wait: Duration) -> Result<(), ApprovalError> {
        self.insert_with(question, wait, true)
    }

    fn insert_with(
        &self,
        question: &Question,
        wait: Duration,
        parked: bool,
    ) -> Result<(), ApprovalError> {
        let now = now_ms();
        self.db().execute(
            "INSERT INTO questions (id, asked_ms, expires_ms, parked, status, call_id, session,
                 principal, tool, phase, action, messages, binding)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                question.id,
                now,
                now.saturating_add(millis(wait)),
                parked,
                question.call_id,
                question.session,
                question.principal,
                question.tool,
                question.phase,
                question.action,
                serde_json::to_string(&question.messages).unwrap_or_default(),
                question.binding.as_str(),
            ],
        )?;
        Ok(())
    }

    /// Stores `answer` to `question` unless it already has one; returns the answer that
    /// stands.
    pub fn answer(&self, question: &Question, answer: &Answer) -> Result<Answer, ApprovalError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let stored = store_answer(&tx, &question.id, answer)?;
        tx.commit()?;
        drop(db);
        if stored {
            return Ok(answer.clone());
        }
        Ok(self
            .answered(&question.id)?
            .unwrap_or_else(|| answer.clone()))
    }

    /// The binding of question `id` while it waits for an answer; `None` when it is unknown,
    /// answered or expired.
    pub fn pending_binding(&self, id: &str) -> Result<Option<super::Binding>, ApprovalError> {
        Ok(self
            .db()
            .query_row(
                "SELECT binding FROM questions WHERE id = ?1 AND status = 'pending' AND expires_ms > ?2",
                params![id, now_ms()],
                |row| row.get(0),
            )
            .optional()?
            .map(super::Binding))
    }

    /// The answer `id` has, if it has one (an expired question's is a denial).
    pub fn answered(&self, id: &str) -> Result<Option<Answer>, ApprovalError> {
        let row = self
            .db()
            .query_row(
                "SELECT status, answered_by, scope, reason FROM questions WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((status, by, scope, reason)) = row else {
            return Err(ApprovalError::Unknown(id.to_owned()));
        };
        let by = Responder::from_text(by.as_deref().unwrap_or("nobody"));
        Ok(match status.as_str() {
            "approved" => Some(Answer::approved(
                scope.and_then(|s| s.parse().ok()).unwrap_or(Scope::Once),
                by,
            )),
            "denied" => Some(Answer::denied(by, reason.unwrap_or_default())),
            _ => None,
        })
    }

    /// An operator's answer to pending question `id`.
    pub fn decide(
        &self,
        id: &str,
        operator: &str,
        approve: Option<Scope>,
        reason: Option<String>,
    ) -> Result<StoredQuestion, ApprovalError> {
        self.expire()?;
        let by = Responder::Operator(operator.to_owned());
        let answer = match approve {
            Some(scope) => Answer::approved(scope, by),
            None => Answer::denied(
                by,
                reason.unwrap_or_else(|| format!("denied by operator {operator}")),
            ),
        };
        let mut db = self.db();
        let tx = db.transaction()?;
        if !store_answer(&tx, id, &answer)? {
            let status: Option<String> = tx
                .query_row("SELECT status FROM questions WHERE id = ?1", [id], |row| {
                    row.get(0)
                })
                .optional()?;
            return Err(match status {
                None => ApprovalError::Unknown(id.to_owned()),
                Some(status) => ApprovalError::Answered {
                    id: id.to_owned(),
                    status: status_of(&status).as_str(),
                },
            });
        }
        tx.commit()?;
        drop(db);
        self.list(true)?
            .into_iter()
            .find(|q| q.id == id)
            .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))
    }

    /// Questions, newest first: the pending ones, or all of them.
    pub fn list(&self, all: bool) -> Result<Vec<StoredQuestion>, ApprovalError> {
        self.expire()?;
        let db = self.db();
        let mut statement = db.prepare(
            "SELECT id, asked_ms, expires_ms, status, call_id, principal, tool, phase, action,
                    messages, answered_by, scope
             FROM questions WHERE ?1 OR status = 'pending' ORDER BY asked_ms DESC, id",
        )?;
        let rows = statement.query_map([all], |row| {
            Ok(StoredQuestion {
                id: row.get(0)?,
                asked: rfc3339(row.get(1)?),
                expires: rfc3339(row.get(2)?),
                status: status_of(&row.get::<_, String>(3)?),
                call_id: row.get(4)?,
                principal: row.get(5)?,
                tool: row.get(6)?,
                phase: row.get(7)?,
                action: row.get(8)?,
                messages: serde_json::from_str(&row.get::<_, String>(9)?).unwrap_or_default(),
                answered_by: row.get(10)?,
                scope: row.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks pending questions past their time as expired.
    fn expire(&self) -> Result<(), ApprovalError> {
        self.db().execute(
            "UPDATE questions SET status = 'expired' WHERE status = 'pending' AND expires_ms <= ?1",
            [now_ms()],
        )?;
        Ok(())
    }
}

fn status_of(text: &str) -> QuestionStatus {
    match text {
        "approved" => QuestionStatus::Approved,
        "denied" => QuestionStatus::Denied,
        "expired" => QuestionStatus::Expired,
        _ => QuestionStatus::Pending,
    }
}

/// Sets the answer of pending question `id` and the grant it leaves; `false` if the question
/// is not pending (answered, expired or unknown).
fn store_answer(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    answer: &Answer,
) -> Result<bool, ApprovalError> {
    let now = now_ms();
    let changed = tx.execute(
        "UPDATE questions SET status = ?2, answered_ms = ?3, answered_by = ?4, scope = ?5, reason = ?6
         WHERE id = ?1 AND status = 'pending' AND expires_ms > ?3",
        params![
            id,
            if answer.approved { "approved" } else { "denied" },
            now,
            answer.by.to_text(),
            answer.scope.map(Scope::to_text),
            answer.reason,
        ],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    let Some(scope) = answer.scope.filter(|_| answer.approved) else {
        return Ok(true);
    };
    let (binding, session, parked, expires): (String, String, bool, i64) = tx.query_row(
        "SELECT binding, session, parked, expires_ms FROM questions WHERE id = ?1",
        [id],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    // What the grant covers: the same action again in the session, or for N minutes; or, for
    // a question nobody was there to be asked, the one retry the error told them to make.
    let grant = match scope {
        Scope::Session => Some((Some(session), now + SESSION_GRANT_MS, None)),
        Scope::Minutes(minutes) => Some((None, now + i64::from(minutes) * 60_000, None)),
        Scope::Once if parked => Some((None, expires, Some(1))),
        Scope::Once => None,
    };
    if let Some((session, expires, uses)) = grant {
        tx.execute(
            "INSERT INTO grants (binding, session, expires_ms, uses_left, scope, question)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![binding, session, expires, uses, scope.to_text(), id],
        )?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Binding;

    fn question(action: &str, session: &str) -> Question {
        let binding = Binding::of("alice", "t", "d", "call", &serde_json::json!({"a": action}));
        Question::new(
            "c1",
            session,
            "alice",
            "t",
            "call",
            action.into(),
            vec!["why".into()],
            binding,
        )
    }

    fn store() -> (tempfile::TempDir, ApprovalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(&dir.path().join("approvals.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn the_first_answer_stands() {
        let (_dir, store) = store();
        let q = question("x", "s1");
        store.insert(&q, Duration::from_secs(60)).unwrap();
        let operator = store.decide(&q.id, "bob", None, None).unwrap();
        assert_eq!(operator.status, QuestionStatus::Denied);
        let late = Answer::approved(Scope::Once, Responder::Client);
        let stands = store.answer(&q, &late).unwrap();
        assert!(!stands.approved);
        assert_eq!(stands.by, Responder::Operator("bob".into()));
        let again = store
            .decide(&q.id, "bob", Some(Scope::Once), None)
            .unwrap_err();
        assert!(again.to_string().contains("already denied"), "{again}");
    }

    #[test]
    fn a_session_grant_covers_the_same_action_in_that_session_only() {
        let (_dir, store) = store();
        let q = question("x", "s1");
        store.insert(&q, Duration::from_secs(60)).unwrap();
        store
            .answer(&q, &Answer::approved(Scope::Session, Responder::Client))
            .unwrap();
        assert!(store.take_grant(&question("x", "s1")).unwrap().is_some());
        assert!(store.take_grant(&question("x", "s1")).unwrap().is_some());
        assert!(store.take_grant(&question("x", "s2")).unwrap().is_none());
        assert!(store.take_grant(&question("y", "s1")).unwrap().is_none());
    }

    #[test]
    fn approving_a_parked_question_once_grants_one_retry() {
        let (_dir, store) = store();
        let q = question("x", "s1");
        store.park(&q, Duration::from_secs(60)).unwrap();
        assert_eq!(store.list(false).unwrap().len(), 1);
        store.decide(&q.id, "bob", Some(Scope::Once), None).unwrap();
        let retry = store.take_grant(&question("x", "s9")).unwrap().unwrap();
        assert_eq!(retry.by, Responder::Grant(q.id.clone()));
        assert!(store.take_grant(&question("x", "s9")).unwrap().is_none());
        assert!(store.list(false).unwrap().is_empty());
    }

    #[test]
    fn an_answer_given_once_by_a_client_leaves_no_grant() {
        let (_dir, store) = store();
        let q = question("x", "s1");
        store.insert(&q, Duration::from_secs(60)).unwrap();
        store
            .answer(&q, &Answer::approved(Scope::Once, Responder::Client))
            .unwrap();
        assert!(store.take_grant(&question("x", "s1")).unwrap().is_none());
    }

    #[test]
    fn reopening_forgets_old_answers_and_expired_grants_but_not_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approvals.db");
        let store = ApprovalStore::open(&path).unwrap();
        let (old, waiting) = (question("x", "s1"), question("y", "s1"));
        store.insert(&old, Duration::from_secs(60)).unwrap();
        store.insert(&waiting, Duration::from_secs(60)).unwrap();
        store
            .answer(
                &old,
                &Answer::approved(Scope::Minutes(1), Responder::Client),
            )
            .unwrap();
        let week_ago = now_ms() - KEEP_ANSWERED_MS - 1;
        store
            .db()
            .execute("UPDATE questions SET asked_ms = ?1", [week_ago])
            .unwrap();
        store
            .db()
            .execute("UPDATE grants SET expires_ms = ?1", [week_ago])
            .unwrap();
        drop(store);
        let store = ApprovalStore::open(&path).unwrap();
        let ids: Vec<String> = store
            .list(true)
            .unwrap()
            .into_iter()
            .map(|q| q.id)
            .collect();
        assert_eq!(ids, vec![waiting.id.clone()]);
        assert!(store.take_grant(&question("x", "s1")).unwrap().is_none());
    }

    #[test]
    fn an_expired_question_cannot_be_answered() {
        let (_dir, store) = store();
        let q = question("x", "s1");
        store.park(&q, Duration::ZERO).unwrap();
        let late = store
            .decide(&q.id, "bob", Some(Scope::Once), None)
            .unwrap_err();
        assert!(late.to_string().contains("already expired"), "{late}");
        assert!(
            store
                .decide("q-nope", "bob", None, None)
                .unwrap_err()
                .to_string()
                .contains("no question q-nope")
        );
    }
}
