//! The phases a decision is made in, and the Rego package that decides each.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A point in a tool call's life at which the gateway asks the policy.
///
/// Each phase is decided by its own Rego package `gatehouse.<phase>`, so a security team can
/// read (and test) one question at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Which tools a caller sees in `tools/list`.
    List,
    /// Whether a tool call may run, and under which limits.
    Call,
    /// Each outgoing HTTP request a running tool makes.
    Http,
    /// Each filesystem operation a running tool makes.
    Fs,
    /// Each socket a running tool opens.
    Socket,
    /// Each read of its settings a running tool makes (`wasi:config/store`).
    Config,
    /// The result of a call, before it goes back to the agent.
    Result,
}

impl Phase {
    /// Every phase, in the order a call meets them.
    pub const ALL: [Phase; 7] = [
        Phase::List,
        Phase::Call,
        Phase::Http,
        Phase::Fs,
        Phase::Socket,
        Phase::Config,
        Phase::Result,
    ];

    /// Whether a person may be asked about this phase's decisions (`ask`): only where an action
    /// waits for the answer. `list` answers at once, and a `result` is already computed.
    pub fn may_ask(self) -> bool {
        matches!(
            self,
            Phase::Call | Phase::Http | Phase::Fs | Phase::Socket | Phase::Config
        )
    }

    /// The lowercase name used in `input.phase` and in the package name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::List => "list",
            Phase::Call => "call",
            Phase::Http => "http",
            Phase::Fs => "fs",
            Phase::Socket => "socket",
            Phase::Config => "config",
            Phase::Result => "result",
        }
    }

    /// The Rego package deciding this phase, e.g. `gatehouse.call`.
    pub fn package(self) -> String {
        format!("{}.{}", PACKAGE_ROOT, self.as_str())
    }

    /// The `data.` path of a rule in this phase's package, e.g. `data.gatehouse.call.allow`.
    pub fn rule_path(self, rule: &str) -> String {
        format!("data.{}.{}.{}", PACKAGE_ROOT, self.as_str(), rule)
    }
}

/// The package every phase package lives under.
pub const PACKAGE_ROOT: &str = "gatehouse";

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not one of the phases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase {0:?}: expected one of list, call, http, fs, socket, config, result")]
pub struct UnknownPhase(pub String);

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|phase| phase.as_str() == s)
            .ok_or_else(|| UnknownPhase(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::json!(phase.as_str())
            );
        }
        assert_eq!(Phase::Call.package(), "gatehouse.call");
        assert_eq!(Phase::Fs.rule_path("allow"), "data.gatehouse.fs.allow");
        assert!("Call".parse::<Phase>().is_err());
        assert!("exec".parse::<Phase>().is_err());
    }
}
