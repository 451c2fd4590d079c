//! Decision replay: what another bundle would have decided about decisions already made
//! (`gatehouse policy replay`), so a policy change can be tried on past traffic before it
//! serves.
//!
//! Each recorded decision's input is decided again with [`PolicyStore::decide`], the gateway's
//! own path: the same input checks, the same evaluators, the same fail-closed semantics (an
//! evaluation error is a deny whose reason says so). The new verdict and reasons are compared
//! with the recorded ones. This module knows nothing of the audit log: the caller reads the
//! decisions from wherever they are kept and feeds them in as [`Recorded`] values.
//!
//! What replay cannot know, it says. An input value redacted when it was recorded
//! (`{"redacted": "hmac-sha256:…"}`) is decided as recorded, and the outcome is marked
//! "redacted: may differ": the policy saw the value, the replay sees its keyed digest. A
//! decision of a phase the bundle has no package for is decided as the gateway would (a deny,
//! except `result`, which the gateway then does not decide at all) and counted apart, so a
//! bundle that dropped a package is obvious rather than a wall of denials.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use serde_json::Value;

use super::decision::{POLICY_ERROR, Verdict};
use super::phase::Phase;
use super::store::PolicyStore;

/// One decision as it was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Where it was recorded (the audit log's sequence number), to find it again.
    pub seq: u64,
    pub time: String,
    pub call_id: Option<String>,
    /// As recorded; only the policy phases are replayed.
    pub phase: String,
    pub principal: Option<String>,
    pub tool: Option<String>,
    /// The policy input, as recorded (with its redacted values).
    pub input: Value,
    /// `allow` or `deny`.
    pub verdict: String,
    pub reasons: Vec<String>,
    /// Whether values of the input were redacted when recorded (replaced by keyed digests, or
    /// a URL's credentials masked): the policy saw them, the replay does not.
    pub redacted: bool,
    /// Set when something other than the policy refused the operation (the host's own checks
    /// record `"refused_by": "host"`): there is no policy decision to replay.
    pub refused_by: Option<String>,
}

/// How a replayed decision differs from the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    AllowToDeny,
    DenyToAllow,
    /// Denied both times, for other reasons.
    ReasonsChanged,
    /// A person is asked on one side and not the other, or is asked other questions.
    AskChanged,
}

impl ChangeKind {
    /// `allow→deny`, `deny→allow`, `reasons changed`.
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::AllowToDeny => "allow→deny",
            ChangeKind::DenyToAllow => "deny→allow",
            ChangeKind::ReasonsChanged => "reasons changed",
            ChangeKind::AskChanged => "ask changed",
        }
    }
}

/// A decision the bundle would make differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub seq: u64,
    pub time: String,
    pub call_id: Option<String>,
    pub phase: Phase,
    pub principal: Option<String>,
    pub tool: Option<String>,
    pub kind: ChangeKind,
    pub recorded_verdict: Verdict,
    pub recorded_reasons: Vec<String>,
    pub replayed_verdict: Verdict,
    pub replayed_reasons: Vec<String>,
    /// The replayed decision is a policy error (evaluation failed, timed out, a rule value of
    /// the wrong shape): a deny, as the gateway would enforce it.
    pub policy_error: bool,
    /// Values of the input were redacted when recorded: the replay decided their digests, so
    /// the bundle's verdict on the real values may differ.
    pub redacted: bool,
    /// The bundle has no package for this phase.
    pub phase_undefined: bool,
}

impl Change {
    /// What a reader must keep in mind about this change, if anything: `redacted: may
    /// differ`, `policy error`, `no gatehouse.<phase> package`.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.redacted {
            notes.push("redacted: may differ".to_owned());
        }
        if self.phase_undefined {
            notes.push(format!("no {} package", self.phase.package()));
        } else if self.policy_error {
            notes.push(POLICY_ERROR.to_owned());
        }
        notes
    }
}

/// Changes counted by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounts {
    pub allow_to_deny: u64,
    pub deny_to_allow: u64,
    pub reasons_changed: u64,
    pub ask_changed: u64,
}

impl ChangeCounts {
    fn add(&mut self, kind: ChangeKind) {
        *match kind {
            ChangeKind::AllowToDeny => &mut self.allow_to_deny,
            ChangeKind::DenyToAllow => &mut self.deny_to_allow,
            ChangeKind::ReasonsChanged => &mut self.reasons_changed,
            ChangeKind::AskChanged => &mut self.ask_changed,
        } += 1;
    }

    fn merge(&mut self, other: &ChangeCounts) {
        self.allow_to_deny += other.allow_to_deny;
        self.deny_to_allow += other.deny_to_allow;
        self.reasons_changed += other.reasons_changed;
        self.ask_changed += other.ask_changed;
    }

    pub fn total(&self) -> u64 {
        self.allow_to_deny + self.deny_to_allow + self.reasons_changed + self.ask_changed
    }
}

/// What a replay found. Every count covers every decision fed in; `changes` lists at most
/// [`ReplayOptions::max_listed`] of them, the earliest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The revision of the bundle that decided.
    pub revision: String,
    /// Decisions decided again.
    pub replayed: u64,
    pub unchanged: u64,
    /// All changes, by kind.
    pub changed: ChangeCounts,
    /// Replayed decisions whose recorded input holds redacted values (changed or not): the
    /// bundle's verdict on the real values may differ from what replay shows for them.
    pub redacted: u64,
    /// Replayed decisions that were policy errors (each a deny).
    pub policy_errors: u64,
    /// Replayed decisions of a phase the bundle has no package for, per phase.
    pub phases_undefined: BTreeMap<Phase, u64>,
    /// Entries fed in that hold no policy decision to replay, per reason.
    pub skipped: BTreeMap<String, u64>,
    /// Changes per tool (`-` for none).
    pub by_tool: BTreeMap<String, ChangeCounts>,
    /// Changes per caller principal (`-` for none).
    pub by_caller: BTreeMap<String, ChangeCounts>,
    /// Changes per phase.
    pub by_phase: BTreeMap<Phase, ChangeCounts>,
    /// The changes, in the order they were recorded.
    pub changes: Vec<Change>,
    /// Changes counted but not listed (past `max_listed`).
    pub unlisted: u64,
}

impl Report {
    /// Whether any decision would change.
    pub fn has_changes(&self) -> bool {
        self.changed.total() > 0
    }

    fn count(&mut self, outcome: Replayed, max_listed: Option<usize>) {
        let change = match outcome {
            Replayed::Skipped(why) => {
                *self.skipped.entry(why).or_default() += 1;
                return;
            }
            Replayed::Decided {
                redacted,
                policy_error,
                phase_undefined,
                change,
            } => {
                self.replayed += 1;
                self.redacted += u64::from(redacted);
                self.policy_errors += u64::from(policy_error);
                if let Some(phase) = phase_undefined {
                    *self.phases_undefined.entry(phase).or_default() += 1;
                }
                match change {
                    None => {
                        self.unchanged += 1;
                        return;
                    }
                    Some(change) => change,
                }
            }
        };
        self.changed.add(change.kind);
        let key = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
        self.by_tool
            .entry(key(&change.tool))
            .or_default()
            .add(change.kind);
        self.by_caller
            .entry(key(&change.principal))
            .or_default()
            .add(change.kind);
        self.by_phase
            .entry(change.phase)
            .or_default()
            .add(change.kind);
        // Decisions arrive in the order they were recorded, so the first ones kept are the
        // earliest.
        if max_listed.is_none_or(|max| self.changes.len() < max) {
            self.changes.push(change);
        } else {
            self.unlisted += 1;
        }
    }

    /// Adds another part of the same replay (decided by another worker).
    fn merge(&mut self, other: Report, max_listed: Option<usize>) {
        self.replayed += other.replayed;
        self.unchanged += other.unchanged;
        self.changed.merge(&other.changed);
        self.redacted += other.redacted;
        self.policy_errors += other.policy_errors;
        for (phase, n) in other.phases_undefined {
            *self.phases_undefined.entry(phase).or_default() += n;
        }
        for (why, n) in other.skipped {
            *self.skipped.entry(why).or_default() += n;
        }
        for (into, from) in [
            (&mut self.by_tool, other.by_tool),
            (&mut self.by_caller, other.by_caller),
        ] {
            for (key, counts) in from {
                into.entry(key).or_default().merge(&counts);
            }
        }
        for (phase, counts) in other.by_phase {
            self.by_phase.entry(phase).or_default().merge(&counts);
        }
        self.changes.extend(other.changes);
        self.changes.sort_by_key(|c| c.seq);
        self.unlisted += other.unlisted;
        if let Some(max) = max_listed
            && self.changes.len() > max
        {
            self.unlisted += (self.changes.len() - max) as u64;
            self.changes.truncate(max);
        }
    }
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Threads deciding at once (each with its own evaluator); 1 decides on the feeding thread.
    pub jobs: usize,
    /// List at most this many changes (all are counted); `None` lists every one.
    pub max_listed: Option<usize>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            max_listed: None,
        }
    }
}

/// Decisions handed to a worker at once: large enough that the channel costs nothing per
/// decision, small enough that workers share the tail of the log evenly.
const BATCH: usize = 256;

/// Replays every decision `feed` hands over, in the order they were recorded, against
/// `store`'s bundle. `feed` is called once, on this thread, with a function to call for each
/// recorded entry; its error (reading the log) ends the replay.
pub fn replay<E>(
    store: &PolicyStore,
    options: &ReplayOptions,
    feed: impl FnOnce(&mut dyn FnMut(Recorded)) -> Result<(), E>,
) -> Result<Report, E> {
    let max_listed = options.max_listed;
    let mut report = Report {
        revision: store.revision(),
        ..Report::default()
    };
    if options.jobs <= 1 {
        feed(&mut |recorded| report.count(replay_one(store, &recorded), max_listed))?;
        return Ok(report);
    }
    let (sender, receiver) = mpsc::sync_channel::<Vec<Recorded>>(options.jobs * 2);
    let receiver = Mutex::new(receiver);
    let parts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..options.jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut part = Report::default();
                    loop {
                        // The lock is held only to take the next batch.
                        let batch = receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        let Ok(batch) = batch else { break };
                        for recorded in batch {
                            part.count(replay_one(store, &recorded), max_listed);
                        }
                    }
                    part
                })
            })
            .collect();
        let mut batch = Vec::with_capacity(BATCH);
        let fed = feed(&mut |recorded| {
            batch.push(recorded);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                // The workers only stop once the sender is dropped, so this cannot fail.
                let _ = sender.send(full);
            }
        });
        if !batch.is_empty() {
            let _ = sender.send(batch);
        }
        drop(sender);
        let parts: Vec<Report> = workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        fed.map(|()| parts)
    })?;
    for part in parts {
        report.merge(part, max_listed);
    }
    Ok(report)
}

/// One entry's outcome.
enum Replayed {
    /// Not a policy decision that can be replayed; the reason, for the counts.
    Skipped(String),
    Decided {
        redacted: bool,
        policy_error: bool,
        /// The phase, when the bundle has no package for it.
        phase_undefined: Option<Phase>,
        change: Option<Change>,
    },
}

/// Why a `list` entry is skipped: the gateway records one entry per listing, holding which
/// tools were shown and hidden, not the input each tool's decision had.
const LISTING: &str = "list: a listing records which tools were shown, not each tool's input";

/// Whether two sets of `deny` or `ask` messages are the same: the rules are sets, so order does
/// not matter. Sorts `replayed`.
fn same_messages(recorded: &[String], replayed: &mut [String]) -> bool {
    let mut before = recorded.to_vec();
    before.sort();
    replayed.sort();
    before == replayed
}

fn replay_one(store: &PolicyStore, recorded: &Recorded) -> Replayed {
    let Ok(phase) = recorded.phase.parse::<Phase>() else {
        return Replayed::Skipped(format!("{}: not a policy decision", recorded.phase));
    };
    if phase == Phase::List {
        return Replayed::Skipped(LISTING.to_owned());
    }
    if let Some(by) = &recorded.refused_by {
        return Replayed::Skipped(format!(
            "{phase}: refused by the {by} before the policy was asked"
        ));
    }
    let recorded_verdict = match recorded.verdict.as_str() {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        "ask" => Verdict::Ask,
        other => {
            return Replayed::Skipped(format!(
                "{phase}: verdict {other:?} is not a decision (allow, deny or ask)"
            ));
        }
    };
    let defined = store.defines(phase);
    // Without a `gatehouse.result` package the gateway does not decide results: they pass.
    // Every other phase is decided, and a missing package is a deny (`decide` says why).
    let (replayed_verdict, mut replayed_reasons) = if !defined && phase == Phase::Result {
        (Verdict::Allow, Vec::new())
    } else {
        let decision = store.decide(phase, &recorded.input);
        (decision.verdict, decision.reasons)
    };
    let policy_error = replayed_reasons
        .iter()
        .any(|reason| reason.starts_with(POLICY_ERROR));
    let redacted = recorded.redacted;
    let kind = match (recorded_verdict, replayed_verdict) {
        (Verdict::Allow, Verdict::Deny) => Some(ChangeKind::AllowToDeny),
        (Verdict::Deny, Verdict::Allow) => Some(ChangeKind::DenyToAllow),
        (Verdict::Deny, Verdict::Deny) => {
            (!same_messages(&recorded.reasons, &mut replayed_reasons))
                .then_some(ChangeKind::ReasonsChanged)
        }
        (Verdict::Ask, Verdict::Ask) => (!same_messages(&recorded.reasons, &mut replayed_reasons))
            .then_some(ChangeKind::AskChanged),
        (Verdict::Ask, _) | (_, Verdict::Ask) => Some(ChangeKind::AskChanged),
        (Verdict::Allow, Verdict::Allow) => None,
    };
    Replayed::Decided {
        redacted,
        policy_error,
        phase_undefined: (!defined).then_some(phase),
        change: kind.map(|kind| Change {
            seq: recorded.seq,
            time: recorded.time.clone(),
            call_id: recorded.call_id.clone(),
            phase,
            principal: recorded.principal.clone(),
            tool: recorded.tool.clone(),
            kind,
            recorded_verdict,
            recorded_reasons: recorded.reasons.clone(),
            replayed_verdict,
            replayed_reasons,
            policy_error,
            redacted,
            phase_undefined: !defined,
        }),
    }
}
