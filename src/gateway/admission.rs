//! Whether a call the policy allowed may start now: how many calls its principal made in the
//! last minute (`limits.calls_per_minute_per_principal`, tightened per call by the policy's
//! `calls_per_minute`), how many its principal is running (`max_concurrent_per_principal`) and
//! how many its component is running (`max_concurrent_per_component`).
//!
//! A call over any of them is refused at once rather than queued, naming the limit, so a
//! flooding or stuck caller cannot hold the others back. Refused calls do not count.
//!
//! The rate is a sliding window: each principal keeps the start times of its admitted calls of
//! the last 60 s (at most as many as the largest limit that can apply), and a principal with no
//! call running and none in the last minute is forgotten at the next sweep (one a minute), so
//! memory follows the principals active in the last two minutes, not every principal ever seen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::runtime::CallError;

/// The window `calls_per_minute` counts over.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The most calls one principal's window remembers; also the highest rate that can be
/// configured. A policy asking for more when no rate is configured gets this (never looser).
pub const MAX_CALLS_PER_MINUTE: u64 = 100_000;

/// Where admission reads the time; tests step it by hand instead of waiting for a window.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The limits that decide whether a call may start, and what each principal and component is
/// using of them.
pub struct Admission {
    /// Calls per principal per minute; 0 is no configured rate.
    rate: u64,
    /// Calls per principal at once; 0 is no limit.
    per_principal: u32,
    /// Calls per component at once (at least 1).
    per_component: u32,
    principals: Arc<Mutex<Principals>>,
    /// Per component name: calls it may still start. Kept across reloads, so a replaced
    /// component shares its predecessor's slots.
    components: Mutex<HashMap<String, Arc<Semaphore>>>,
}

struct Principals {
    usage: HashMap<String, Usage>,
    clock: Clock,
    /// When the next sweep forgets idle principals.
    next_sweep: Instant,
}

#[derive(Default)]
struct Usage {
    /// Start times of admitted calls, oldest first, none older than the window once trimmed.
    recent: VecDeque<Instant>,
    running: u32,
}

/// What an admitted call holds while it runs; dropping it frees its places.
pub struct Ticket {
    _component: OwnedSemaphorePermit,
    principals: Arc<Mutex<Principals>>,
    principal: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut principals = lock(&self.principals);
        if let Some(usage) = principals.usage.get_mut(&self.principal) {
            usage.running = usage.running.saturating_sub(1);
        }
    }
}

/// The rate limit that applies to one call, and which setting it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    calls: u64,
    setting: &'static str,
}

impl Admission {
    /// Refuses a configured rate above what a window can count.
    pub fn validate(limits: &LimitsConfig) -> Result<(), String> {
        match limits.calls_per_minute_per_principal {
            rate if rate > MAX_CALLS_PER_MINUTE => Err(format!(
                "limits.calls_per_minute_per_principal = {rate} is above the highest rate a window counts ({MAX_CALLS_PER_MINUTE}); lower it, or set 0 for no rate limit"
            )),
            _ => Ok(()),
        }
    }

    /// The admission of a configuration's limits (a rate above [`MAX_CALLS_PER_MINUTE`],
    /// which [`Admission::validate`] refuses, counts as that maximum).
    pub fn new(limits: &LimitsConfig) -> Admission {
        let clock: Clock = Arc::new(Instant::now);
        let now = clock();
        Admission {
            rate: limits
                .calls_per_minute_per_principal
                .min(MAX_CALLS_PER_MINUTE),
            per_principal: limits.max_concurrent_per_principal,
            per_component: limits.max_concurrent_per_component.max(1),
            principals: Arc::new(Mutex::new(Principals {
                usage: HashMap::new(),
                clock,
                next_sweep: now + RATE_WINDOW,
            })),
            components: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the clock (tests: a window passes when the test says so).
    pub fn set_clock(&self, clock: impl Fn() -> Instant + Send + Sync + 'static) {
        let mut principals = lock(&self.principals);
        principals.clock = Arc::new(clock);
        principals.next_sweep = (principals.clock)() + RATE_WINDOW;
    }

    /// Principals whose usage is remembered now.
    pub fn tracked_principals(&self) -> usize {
        lock(&self.principals).usage.len()
    }

    /// Admits a call of `principal` to `component`, or says which limit refuses it.
    /// `calls_per_minute` is the policy's obligation for this call: it can only tighten the
    /// configured rate.
    pub fn admit(
        &self,
        principal: &str,
        component: &str,
        calls_per_minute: Option<u64>,
    ) -> Result<Ticket, CallError> {
        let rate = self.rate_for(calls_per_minute);
        let mut principals = lock(&self.principals);
        let now = (principals.clock)();
        principals.sweep(now);
        let usage = principals.usage.entry(principal.to_owned()).or_default();
        while usage
            .recent
            .front()
            .is_some_and(|start| now.saturating_duration_since(*start) >= RATE_WINDOW)
        {
            usage.recent.pop_front();
        }
        let refusal = if let Some(rate) = rate
            && usage.recent.len() as u64 >= rate.calls
        {
            Some(CallError::RateLimited {
                principal: principal.to_owned(),
                calls: usage.recent.len() as u64,
                window_secs: RATE_WINDOW.as_secs(),
                setting: rate.setting,
                limit: rate.calls,
            })
        } else if self.per_principal > 0 && usage.running >= self.per_principal {
            Some(CallError::PrincipalBusy {
                principal: principal.to_owned(),
                limit: self.per_principal,
            })
        } else {
            None
        };
        let permit = match refusal {
            Some(refusal) => Err(refusal),
            None => self
                .component_slots(component)
                .try_acquire_owned()
                .map_err(|_| CallError::Busy {
                    component: component.to_owned(),
                    limit: self.per_component,
                }),
        };
        let permit = match permit {
            Ok(permit) => permit,
            Err(refusal) => {
                if usage.recent.is_empty() && usage.running == 0 {
                    principals.usage.remove(principal);
                }
                return Err(refusal);
            }
        };
        usage.recent.push_back(now);
        let kept = if self.rate > 0 {
            self.rate
        } else {
            MAX_CALLS_PER_MINUTE
        };
        while usage.recent.len() as u64 > kept {
            usage.recent.pop_front();
        }
        usage.running += 1;
        drop(principals);
        Ok(Ticket {
            _component: permit,
            principals: self.principals.clone(),
            principal: principal.to_owned(),
        })
    }

    /// The configured rate tightened (never loosened) by the policy's.
    fn rate_for(&self, asked: Option<u64>) -> Option<Rate> {
        let configured = (self.rate > 0).then_some(Rate {
            calls: self.rate,
            setting: "limits.calls_per_minute_per_principal",
        });
        let asked = asked.map(|calls| Rate {
            calls: calls.min(MAX_CALLS_PER_MINUTE),
            setting: "the policy's limits.calls_per_minute",
        });
        match (configured, asked) {
            (Some(configured), Some(asked)) if asked.calls < configured.calls => Some(asked),
            (Some(configured), _) => Some(configured),
            (None, asked) => asked,
        }
    }

    /// The concurrency slots of the component called `name` (created on first use).
    fn component_slots(&self, name: &str) -> Arc<Semaphore> {
        lock(&self.components)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_component as usize)))
            .clone()
    }
}

impl Principals {
    /// Once a window: forgets every principal with no call running and none in the window.
    fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.usage.retain(|_, usage| {
            usage.running > 0
                || usage
                    .recent
                    .back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < RATE_WINDOW)
        });
        self.next_sweep = now + RATE_WINDOW;
    }
}

/// A poisoned lock still holds consistent counts (no code path panics half-way through).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An admission with a hand-stepped clock; returns it and the clock's setter.
    fn with_limits(configure: impl FnOnce(&mut LimitsConfig)) -> (Admission, Arc<Mutex<Instant>>) {
        let mut limits = LimitsConfig::default();
        configure(&mut limits);
        let admission = Admission::new(&limits);
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = now.clone();
        admission.set_clock(move || *lock(&clock));
        (admission, now)
    }

    fn advance(clock: &Mutex<Instant>, by: Duration) {
        *lock(clock) += by;
    }

    #[test]
    fn the_window_slides_and_refused_calls_do_not_count() {
        let (admission, clock) = with_limits(|l| l.calls_per_minute_per_principal = 2);
        drop(admission.admit("alice", "c", None).unwrap());
        advance(&clock, Duration::from_secs(30));
        drop(admission.admit("alice", "c", None).unwrap());
        for _ in 0..3 {
            let refusal = admission.admit("alice", "c", None).err().unwrap();
            assert_eq!(
                refusal.to_string(),
                "rate limit: principal \"alice\" made 2 calls in the last 60 s (limits.calls_per_minute_per_principal = 2)"
            );
        }
        // Another principal has a window of its own.
        drop(admission.admit("bob", "c", None).unwrap());
        // The first call leaves the window; the refused ones never entered it.
        advance(&clock, Duration::from_secs(30));
        drop(admission.admit("alice", "c", None).unwrap());
        assert!(admission.admit("alice", "c", None).is_err());
    }

    #[test]
    fn the_policy_tightens_the_configured_rate_and_never_loosens_it() {
        let (admission, _) = with_limits(|l| l.calls_per_minute_per_principal = 3);
        drop(admission.admit("alice", "c", Some(1)).unwrap());
        let refusal = admission.admit("alice", "c", Some(1)).err().unwrap();
        assert_eq!(
            refusal.to_string(),
            "rate limit: principal \"alice\" made 1 calls in the last 60 s (the policy's limits.calls_per_minute = 1)"
        );
        // A call without the obligation still has the configured rate (it counts all calls).
        drop(admission.admit("alice", "c", None).unwrap());
        drop(admission.admit("alice", "c", Some(1000)).unwrap());
        let refusal = admission.admit("alice", "c", Some(1000)).err().unwrap();
        assert!(
            refusal.to_string().ends_with(
                "made 3 calls in the last 60 s (limits.calls_per_minute_per_principal = 3)"
            ),
            "{refusal}"
        );
    }

    #[test]
    fn a_policy_rate_applies_when_none_is_configured() {
        let (admission, _) = with_limits(|_| {});
        for _ in 0..5 {
            drop(admission.admit("alice", "c", None).unwrap());
        }
        // The calls made before the obligation count too.
        let refusal = admission.admit("alice", "c", Some(5)).err().unwrap();
        assert!(refusal.to_string().contains("made 5 calls"), "{refusal}");
        let refusal = admission.admit("alice", "c", Some(0)).err().unwrap();
        assert!(
            refusal.to_string().contains("calls_per_minute = 0"),
            "{refusal}"
        );
    }

    #[test]
    fn concurrency_is_limited_per_principal_and_freed_when_a_call_ends() {
        let (admission, _) = with_limits(|l| l.max_concurrent_per_principal = 1);
        let running = admission.admit("alice", "a", None).unwrap();
        let refusal = admission.admit("alice", "b", None).err().unwrap();
        assert_eq!(
            refusal.to_string(),
            "concurrency limit: principal \"alice\" is already running 1 calls (limits.max_concurrent_per_principal = 1); try again when one has finished"
        );
        let bob = admission.admit("bob", "b", None).unwrap();
        drop(running);
        drop(admission.admit("alice", "b", None).unwrap());
        drop(bob);
    }

    #[test]
    fn component_slots_are_shared_by_every_principal() {
        let (admission, _) = with_limits(|l| l.max_concurrent_per_component = 1);
        let running = admission.admit("alice", "c", None).unwrap();
        let refusal = admission.admit("bob", "c", None).err().unwrap();
        assert!(
            matches!(refusal, CallError::Busy { limit: 1, .. }),
            "{refusal}"
        );
        drop(admission.admit("bob", "other", None).unwrap());
        drop(running);
        drop(admission.admit("bob", "c", None).unwrap());
    }

    #[test]
    fn idle_principals_are_forgotten() {
        let (admission, clock) = with_limits(|l| l.calls_per_minute_per_principal = 10);
        let running = admission.admit("busy", "c", None).unwrap();
        for index in 0..100 {
            drop(admission.admit(&format!("p{index}"), "c", None).unwrap());
        }
        assert_eq!(admission.tracked_principals(), 101);
        advance(&clock, RATE_WINDOW + Duration::from_secs(1));
        drop(admission.admit("new", "c", None).unwrap());
        // Kept: the one still running and the one that just called.
        assert_eq!(admission.tracked_principals(), 2);
        drop(running);
        // Refused calls of an unknown principal leave nothing behind.
        let (admission, _) = with_limits(|_| {});
        assert!(admission.admit("eve", "c", Some(0)).is_err());
        assert_eq!(admission.tracked_principals(), 0);
    }

    #[test]
    fn without_a_configured_rate_a_window_remembers_at_most_the_highest_countable_rate() {
        let (admission, _) = with_limits(|_| {});
        for _ in 0..=MAX_CALLS_PER_MINUTE {
            drop(admission.admit("alice", "c", None).unwrap());
        }
        let principals = lock(&admission.principals);
        assert_eq!(
            principals.usage["alice"].recent.len() as u64,
            MAX_CALLS_PER_MINUTE
        );
    }
}
