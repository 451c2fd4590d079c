use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use super::*;

const TOKEN: &str = "ghp_0123456789abcdef";

fn secrets() -> Secrets {
    Secrets::from_values([("github", TOKEN), ("other", "s3cr3t-value-2")]).unwrap()
}

fn source_file(path: &Path) -> SecretsConfig {
    SecretsConfig::from([(
        "github".to_owned(),
        SecretSource {
            env: None,
            file: Some(path.to_owned()),
        },
    )])
}

#[test]
fn templates_parse_placeholders_and_render_only_known_secrets() {
    let template = Template::parse("Bearer {{secret.github}}").unwrap();
    assert_eq!(template.secrets().collect::<Vec<_>>(), ["github"]);
    assert_eq!(template.to_string(), "Bearer {{secret.github}}");
    assert_eq!(
        secrets().render(&template).unwrap(),
        format!("Bearer {TOKEN}").into_bytes()
    );
    let spaced = Template::parse("{{ secret.github }}:{{secret.other}}").unwrap();
    assert_eq!(
        secrets().render(&spaced).unwrap(),
        format!("{TOKEN}:s3cr3t-value-2").into_bytes()
    );
    let unknown = Template::parse("token {{secret.gitlab}}").unwrap();
    assert_eq!(secrets().render(&unknown).unwrap_err(), "gitlab");
    assert_eq!(
        Template::parse("plain").unwrap().secrets().count(),
        0,
        "a template without placeholders is a constant"
    );
}

#[test]
fn malformed_templates_are_refused_with_the_reason() {
    assert_eq!(
        Template::parse("Bearer {{secret.github").unwrap_err(),
        TemplateError::Unclosed
    );
    assert_eq!(
        Template::parse("{{env.HOME}}").unwrap_err(),
        TemplateError::Placeholder("env.HOME".into())
    );
    assert_eq!(
        Template::parse("{{secret.a b}}").unwrap_err(),
        TemplateError::Placeholder("secret.a b".into())
    );
    assert_eq!(
        Template::parse("Bearer x\r\nX-Evil: 1").unwrap_err(),
        TemplateError::NotHeaderText
    );
    let message = Template::parse("{{github}}").unwrap_err().to_string();
    assert!(message.contains("{{secret.NAME}}"), "{message}");
}

#[test]
fn a_secret_file_must_be_private_and_loses_its_trailing_line_break() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("github");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Secrets::load(&source_file(&path)).unwrap_err();
    assert!(matches!(error, SecretsError::Exposed { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("chmod 600"),
        "{message}"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = Secrets::load(&source_file(&path)).unwrap();
    assert_eq!(secrets.value("github"), Some(TOKEN.as_bytes()));

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let through_link = Secrets::load(&source_file(&link)).unwrap();
    assert_eq!(through_link.value("github"), Some(TOKEN.as_bytes()));

    let missing = Secrets::load(&source_file(&dir.path().join("absent"))).unwrap_err();
    assert!(matches!(missing, SecretsError::File { .. }), "{missing}");
}

#[test]
fn env_sources_bad_names_short_and_multiline_values_are_refused() {
    let from_env = |variable: &str| {
        SecretsConfig::from([(
            "api".to_owned(),
            SecretSource {
                env: Some(variable.to_owned()),
                file: None,
            },
        )])
    };
    let error = Secrets::load(&from_env("GATEHOUSE_TEST_SECRET_THAT_IS_NOT_SET")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("GATEHOUSE_TEST_SECRET_THAT_IS_NOT_SET is not set"),
        "{error}"
    );
    // PATH is set in every test environment and long enough to be a value.
    assert!(Secrets::load(&from_env("PATH")).is_ok());

    let both = SecretsConfig::from([(
        "api".to_owned(),
        SecretSource {
            env: Some("PATH".into()),
            file: Some("x".into()),
        },
    )]);
    assert!(matches!(
        Secrets::load(&both).unwrap_err(),
        SecretsError::Source(_)
    ));
    assert!(matches!(
        Secrets::from_values([("a.b", TOKEN)]).unwrap_err(),
        SecretsError::Name(_)
    ));
    assert!(matches!(
        Secrets::from_values([("short", "1234567")]).unwrap_err(),
        SecretsError::TooShort { .. }
    ));
    assert!(matches!(
        Secrets::from_values([("lines", "abcdefgh\nX-Evil: 1")]).unwrap_err(),
        SecretsError::NotHeaderText { .. }
    ));
}

#[test]
fn an_env_grant_holding_a_secret_value_is_refused() {
    let env = BTreeMap::from([("HARMLESS".to_owned(), "value".to_owned())]);
    secrets().check_not_in_env(&env).unwrap();
    let env = BTreeMap::from([("TOKEN".to_owned(), format!("token={TOKEN}"))]);
    let error = secrets().check_not_in_env(&env).unwrap_err().to_string();
    assert!(
        error.contains("TOKEN") && error.contains("github"),
        "{error}"
    );
    assert!(
        !error.contains(TOKEN),
        "the message holds the value: {error}"
    );
}

#[test]
fn values_are_masked_in_place_keeping_the_length() {
    let text = format!("echo: Bearer {TOKEN}, again {TOKEN}; other s3cr3t-value-2.");
    let secrets = secrets();
    let (masked, found) = secrets.mask_text(&text).unwrap();
    assert_eq!(masked.len(), text.len());
    assert!(!masked.contains(TOKEN) && !masked.contains("s3cr3t-value-2"));
    assert!(masked.starts_with("echo: Bearer ********************, again"));
    assert_eq!(found, ["github", "other"]);
    assert!(secrets.mask_text("nothing to see").is_none());
    assert!(Secrets::default().mask_text(TOKEN).is_none());
}

#[test]
fn a_value_split_across_chunks_is_masked_at_every_split() {
    let secrets = Arc::new(secrets());
    let body =
        format!("{{\"headers\":{{\"authorization\":\"Bearer {TOKEN}\"}},\"x\":\"{TOKEN}\"}}");
    let expected = body.replace(TOKEN, &"*".repeat(TOKEN.len()));
    for first in 0..=body.len() {
        for second in first..=body.len() {
            let mut masker = StreamMasker::new(secrets.clone());
            let mut out = Vec::new();
            for chunk in [&body[..first], &body[first..second], &body[second..]] {
                out.extend(masker.push(chunk.as_bytes()));
            }
            out.extend(masker.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "split at {first}, {second}"
            );
            assert_eq!(masker.found(), ["github"]);
        }
    }
}

#[test]
fn debug_output_never_shows_a_value() {
    let shown = format!("{:?}", secrets());
    assert!(
        !shown.contains(TOKEN) && shown.contains("secret bytes"),
        "{shown}"
    );
}
