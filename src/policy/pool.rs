//! Idle evaluators kept for reuse: an interpreter engine or an RVM machine evaluates one
//! decision at a time, so concurrent decisions each take one and give it back afterwards.

use std::sync::{Mutex, PoisonError};

/// Idle evaluators kept; more concurrent decisions than this make new ones and drop the extras
/// afterwards.
const CAPACITY: usize = 64;

pub struct Pool<T> {
    idle: Mutex<Vec<T>>,
}

impl<T> Pool<T> {
    /// A pool holding `idle` to begin with.
    pub fn new(idle: Vec<T>) -> Pool<T> {
        Pool {
            idle: Mutex::new(idle),
        }
    }

    /// An idle evaluator, if there is one.
    pub fn take(&self) -> Option<T> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Keeps `evaluator` for the next decision (only give back one whose evaluation succeeded:
    /// one that saw an error or a timeout may hold state from it).
    pub fn give_back(&self, evaluator: T) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < CAPACITY {
            idle.push(evaluator);
        }
    }
}
