//! What an approval is bound to: the digest of the action, not of the moment it was asked.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Input members that differ between two identical actions: who asked when, in which call,
/// session and trace. The caller is bound by its principal alone (its token's claims carry
/// times).
const VOLATILE: [&str; 6] = ["call", "time", "session", "trace", "caller", "phase"];

/// Members of a host request that vary while the action does not: the addresses a host name
/// resolves to change with DNS (the `deny` rules that check them are evaluated on every
/// request, approved or not, since `deny` comes before `ask`).
const VOLATILE_REQUEST: [&str; 2] = ["resolved_ips", "addresses"];

/// The hex SHA-256 binding an approval to one action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding(pub String);

impl Binding {
    /// The binding of `phase`'s decision on `input` for `principal`, calling `tool` of the
    /// component with `component_digest`.
    pub fn of(
        principal: &str,
        tool: &str,
        component_digest: &str,
        phase: &str,
        input: &Value,
    ) -> Binding {
        let mut stable = Map::new();
        if let Value::Object(members) = input {
            for (name, value) in members {
                if VOLATILE.contains(&name.as_str()) {
                    continue;
                }
                let value = match value {
                    Value::Object(request) if name == "request" => Value::Object(
                        request
                            .iter()
                            .filter(|(key, _)| !VOLATILE_REQUEST.contains(&key.as_str()))
                            .map(|(key, value)| (key.clone(), value.clone()))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                stable.insert(name.clone(), value);
            }
        }
        let document = json!({
            "principal": principal,
            "tool": tool,
            "component_digest": component_digest,
            "phase": phase,
            "input": stable,
        });
        // JCS: the same document hashes the same whatever the order its members were built in.
        let canonical = serde_json_canonicalizer::to_string(&document)
            .expect("a JSON value from serde_json canonicalizes");
        Binding(hex::encode(Sha256::digest(canonical.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str, time: &str, call: &str) -> Value {
        json!({
            "phase": "http", "time": time, "call": {"id": call},
            "caller": {"principal": "alice", "claims": {"iat": time}},
            "session": {"id": call, "labels": []},
            "tool": {"name": "fetch_fetch"}, "arguments": {"url": url},
            "request": {"method": "GET", "host": "example.com", "path": url,
                        "resolved_ips": [time], "addresses": [{"ip": time}]},
        })
    }

    /// The binding of an `http` decision on `input` by `who` = [principal, tool, digest, phase].
    fn bind(who: [&str; 4], input: &Value) -> Binding {
        Binding::of(who[0], who[1], who[2], who[3], input)
    }

    const ALICE: [&str; 4] = ["alice", "fetch_fetch", "sha256:1", "http"];

    #[test]
    fn the_same_action_binds_the_same_whenever_it_is_asked() {
        let first = bind(ALICE, &input("/a", "t1", "c1"));
        assert_eq!(first, bind(ALICE, &input("/a", "t2", "c2")));
        assert_eq!(first.as_str().len(), 64);
    }

    #[test]
    fn any_change_to_what_is_done_or_who_does_it_is_a_new_binding() {
        let base = bind(ALICE, &input("/a", "t", "c"));
        assert_ne!(base, bind(ALICE, &input("/b", "t", "c")));
        for who in [
            ["bob", "fetch_fetch", "sha256:1", "http"],
            ["alice", "fetch_other", "sha256:1", "http"],
            ["alice", "fetch_fetch", "sha256:2", "http"],
            ["alice", "fetch_fetch", "sha256:1", "call"],
        ] {
            assert_ne!(base, bind(who, &input("/a", "t", "c")), "{who:?}");
        }
    }
}
