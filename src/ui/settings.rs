//! The `[ui]` section of `gatehouse.toml`: who may open the web view.

use serde::{Deserialize, Serialize};

/// The auditor's web view (`[ui]`). Off unless it names at least one auditor or operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    /// Principals (from `[[api_keys]]` or a JWT) who may read the web view.
    pub auditors: Vec<String>,
    /// Principals who may read it and take its actions.
    pub operators: Vec<String>,
}

/// What a principal may do in the web view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page and runs a verification.
    Auditor,
    /// An auditor who may also take the operator's actions.
    Operator,
}

impl UiSettings {
    /// Whether `/ui/` is served: only when someone may use it.
    pub fn enabled(&self) -> bool {
        !(self.auditors.is_empty() && self.operators.is_empty())
    }

    /// A setting that cannot be what the operator meant is an error, not a surprise later.
    pub fn validate(&self) -> Result<(), String> {
        for name in self.auditors.iter().chain(&self.operators) {
            if name.trim().is_empty() {
                return Err("[ui] names an empty principal".to_owned());
            }
            if name == crate::auth::Caller::ANONYMOUS {
                return Err(
                    "[ui] names `anonymous`: the web view is only for principals who prove who \
                     they are (an API key or a JWT)"
                        .to_owned(),
                );
            }
        }
        Ok(())
    }

    /// The role of an authenticated principal; `None` for anyone the section does not name
    /// and for an unauthenticated caller, whatever name it carries.
    pub fn role_of(&self, principal: &str, authenticated: bool) -> Option<Role> {
        if !authenticated {
            return None;
        }
        if self.operators.iter().any(|p| p == principal) {
            Some(Role::Operator)
        } else if self.auditors.iter().any(|p| p == principal) {
            Some(Role::Auditor)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> UiSettings {
        UiSettings {
            auditors: vec!["alice".into()],
            operators: vec!["olga".into()],
        }
    }

    #[test]
    fn only_named_and_authenticated_principals_get_a_role() {
        let s = settings();
        assert_eq!(s.role_of("alice", true), Some(Role::Auditor));
        assert_eq!(s.role_of("olga", true), Some(Role::Operator));
        assert_eq!(s.role_of("bob", true), None);
        assert_eq!(s.role_of("alice", false), None);
        assert_eq!(s.role_of("ALICE", true), None, "names are exact");
    }

    #[test]
    fn off_unless_someone_is_named_and_never_for_anonymous() {
        assert!(!UiSettings::default().enabled());
        assert!(settings().enabled());
        let anonymous = UiSettings {
            auditors: vec!["anonymous".into()],
            ..Default::default()
        };
        assert!(anonymous.validate().unwrap_err().contains("anonymous"));
        let empty = UiSettings {
            operators: vec![" ".into()],
            ..Default::default()
        };
        assert!(empty.validate().is_err());
        assert!(settings().validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<UiSettings>("auditor = [\"alice\"]").unwrap_err();
        assert!(err.to_string().contains("unknown field `auditor`"), "{err}");
    }
}
