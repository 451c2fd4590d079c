//! Supply chain: digests, key-based and keyless signatures, strict mode, tool-definition drift,
//! downloads, and the `gatehouse component` commands.
//!
//! Every key, certificate, trust root and bundle is generated here: a cosign-style P-256 key
//! pair with the sigstore crate, and for keyless a local "Fulcio" CA, CT log key and leaf
//! certificate (identity SAN, issuer extension, embedded SCT) with rcgen. Nothing touches the
//! network except a plain HTTP server on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::signing::{CosignKey, cosign_key, key_bundle};
use gatehouse::config::{
    ComponentConfig, Config, DriftAction, SignatureConfig, SupplyChainConfig, SupplyMode,
};
use gatehouse::gateway::Gateway;
use gatehouse::supply::source::Origin;
use gatehouse::supply::{Fetcher, Requirement, Signer, signature};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PublicKeyData, SanType, SigningKey, date_time_ymd,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Key-based signing (what `cosign sign-blob --key` produces): `common::signing`.

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn bundle_path(component: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sigstore.json", component.display()))
}

/// A copy of the echo component in `dir`, with `key`'s bundle beside it.
fn signed_echo(dir: &Path, key: &CosignKey) -> (PathBuf, PathBuf) {
    let bytes = std::fs::read(common::component("echo")).unwrap();
    let component = dir.join("echo.wasm");
    write(&component, &bytes);
    write(
        &bundle_path(&component),
        key_bundle(key, &bytes).to_string().as_bytes(),
    );
    let key_file = dir.join("cosign.pub");
    write(&key_file, key.public_pem.as_bytes());
    (component, key_file)
}

fn verify_file(component: &Path, requirement: &Requirement) -> Result<Signer, String> {
    let bytes = std::fs::read(component).unwrap();
    let fetcher = Fetcher::new(&SupplyChainConfig::default(), None);
    let origin = Origin::File(component.to_owned());
    let bundle_origin = Origin::bundle_of(&ComponentConfig::default(), &origin, None);
    fetcher
        .fetch_bundles(&bundle_origin)
        .and_then(|bundles| signature::verify_any(&bytes, &bundles, requirement))
        .map_err(|e| e.to_string())
}

#[test]
fn key_signed_component_verifies_and_each_tampering_is_refused_specifically() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_key();
    let (component, key_file) = signed_echo(dir.path(), &key);
    let requirement = Requirement::Key {
        key: key_file.clone(),
    };

    let signer = verify_file(&component, &requirement).expect("a good signature verifies");
    let Signer::Key { key_id } = &signer else {
        panic!("{signer:?}")
    };
    assert_eq!(key_id, &signature::key_id(&key.public_pem).unwrap());

    // One flipped byte in the component.
    let mut bytes = std::fs::read(&component).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let flipped = dir.path().join("flipped.wasm");
    write(&flipped, &bytes);
    std::fs::copy(bundle_path(&component), bundle_path(&flipped)).unwrap();
    let err = verify_file(&flipped, &requirement).unwrap_err();
    assert!(err.contains("the component changed after signing"), "{err}");

    // The same tampering against a legacy cosign bundle (no digest in it): the signature
    // check itself catches it.
    let legacy = json!({"base64Signature": key_bundle(&key, &std::fs::read(&component).unwrap())["messageSignature"]["signature"]});
    write(&bundle_path(&flipped), legacy.to_string().as_bytes());
    let err = verify_file(&flipped, &requirement).unwrap_err();
    assert!(err.contains("does not verify with key"), "{err}");

    // A signature by another key.
    let other = cosign_key();
    let original = std::fs::read(&component).unwrap();
    write(
        &bundle_path(&component),
        key_bundle(&other, &original).to_string().as_bytes(),
    );
    let err = verify_file(&component, &requirement).unwrap_err();
    assert!(
        err.contains(&format!("does not verify with key {key_id}")),
        "{err}"
    );

    // A missing bundle.
    std::fs::remove_file(bundle_path(&component)).unwrap();
    let err = verify_file(&component, &requirement).unwrap_err();
    assert!(err.contains("no signature bundle at"), "{err}");
    assert!(err.contains("echo.wasm.sigstore.json"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Keyless: a local Fulcio CA, CT log and Rekor key, written out as a trusted_root.json.

const ISSUER_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 1];
const SCT_LIST_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];
const IDENTITY: &str =
    "https://github.com/acme/tools/.github/workflows/release.yml@refs/heads/main";
const OIDC_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// 2025-01-01T12:00:00Z: inside the leaf certificate's validity (2025-01-01 to 2025-01-02).
const INTEGRATED_TIME: u64 = 1_735_732_800;

struct LocalSigstore {
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_der: Vec<u8>,
    ct_key: KeyPair,
    rekor_key: KeyPair,
}

fn local_sigstore() -> LocalSigstore {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "gatehouse test fulcio");
    ca_params.distinguished_name = name;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = date_time_ymd(2024, 1, 1);
    ca_params.not_after = date_time_ymd(2035, 1, 1);
    let ca_der = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
    LocalSigstore {
        ca_key,
        ca_params,
        ca_der,
        ct_key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        rekor_key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
    }
}

fn log_entry(key: &KeyPair, url: &str) -> Value {
    let spki = key.subject_public_key_info();
    json!({
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": B64.encode(&spki),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": "2020-01-01T00:00:00Z"},
        },
        "logId": {"keyId": B64.encode(Sha256::digest(&spki))},
    })
}

/// Length-prefixed DER TLV: returns (header length, content length) at `at`.
fn der_header(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at + 1] as usize;
    if first < 0x80 {
        return (2, first);
    }
    let n = first & 0x7f;
    let len = der[at + 2..at + 2 + n]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    (2 + n, len)
}

/// The TBSCertificate bytes of a DER certificate.
fn tbs_of(cert: &[u8]) -> Vec<u8> {
    let (outer_header, _) = der_header(cert, 0);
    let (tbs_header, tbs_len) = der_header(cert, outer_header);
    cert[outer_header..outer_header + tbs_header + tbs_len].to_vec()
}

fn der_octet_string(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

impl LocalSigstore {
    fn trust_root(&self) -> Value {
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log_entry(&self.rekor_key, "https://rekor.invalid")],
            "certificateAuthorities": [{
                "subject": {"organization": "gatehouse-test", "commonName": "fulcio"},
                "uri": "https://fulcio.invalid",
                "certChain": {"certificates": [{"rawBytes": B64.encode(&self.ca_der)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [log_entry(&self.ct_key, "https://ctfe.invalid")],
            "timestampAuthorities": [],
        })
    }

    /// A Fulcio-style leaf for `identity`/`issuer` with an SCT from our CT key embedded.
    fn leaf(&self, leaf_key: &KeyPair, identity: &str, issuer: &str) -> Vec<u8> {
        let ca = Issuer::new(self.ca_params.clone(), &self.ca_key);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(identity.try_into().unwrap())];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.serial_number = Some(0x5157_u64.into());
        params.not_before = date_time_ymd(2025, 1, 1);
        params.not_after = date_time_ymd(2025, 1, 2);
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            ISSUER_OID,
            issuer.as_bytes().to_vec(),
        )];
        // The precertificate TBS is the final TBS without the SCT extension: sign that.
        let precert = params.signed_by(leaf_key, &ca).unwrap();
        let tbs = tbs_of(precert.der());
        let timestamp: u64 = INTEGRATED_TIME * 1000;
        let mut signed = vec![0u8, 0u8];
        signed.extend(timestamp.to_be_bytes());
        signed.extend([0, 1]);
        signed.extend(Sha256::digest(self.ca_key.subject_public_key_info()));
        signed.extend(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend(&tbs);
        signed.extend([0, 0]);
        let sct_signature = self.ct_key.sign(&signed).unwrap();
        let mut sct = vec![0u8];
        sct.extend(Sha256::digest(self.ct_key.subject_public_key_info()));
        sct.extend(timestamp.to_be_bytes());
        sct.extend([0, 0, 4, 3]);
        sct.extend((sct_signature.len() as u16).to_be_bytes());
        sct.extend(&sct_signature);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend((sct.len() as u16).to_be_bytes());
        list.extend(&sct);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                SCT_LIST_OID,
                der_octet_string(&list),
            ));
        params.signed_by(leaf_key, &ca).unwrap().der().to_vec()
    }

    /// A v0.1 sigstore bundle: certificate, message signature, and a hashedrekord tlog entry
    /// consistent with them. Its signed entry timestamp is arbitrary bytes (see the test
    /// `keyless_signed_entry_timestamp_is_not_checked`).
    fn sign(&self, bytes: &[u8], identity: &str, issuer: &str) -> Value {
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = self.leaf(&leaf_key, identity, issuer);
        let signature = leaf_key.sign(bytes).unwrap();
        let digest = Sha256::digest(bytes);
        let leaf_pem =
            pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &leaf).unwrap();
        let body = json!({
            "kind": "hashedrekord",
            "apiVersion": "0.0.1",
            "spec": {
                "signature": {
                    "content": B64.encode(&signature),
                    "publicKey": {"content": B64.encode(leaf_pem.as_bytes())},
                },
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest)}},
            },
        });
        json!({
            "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
            "verificationMaterial": {
                "x509CertificateChain": {"certificates": [{"rawBytes": B64.encode(&leaf)}]},
                "tlogEntries": [{
                    "logIndex": "7",
                    "logId": {"keyId": B64.encode(Sha256::digest(self.rekor_key.subject_public_key_info()))},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": INTEGRATED_TIME.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": B64.encode([0x5a; 70])},
                    "canonicalizedBody": B64.encode(body.to_string()),
                }],
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(digest)},
                "signature": B64.encode(&signature),
            },
        })
    }
}

fn keyless_requirement(trust_root: &Path, identity: &str) -> Requirement {
    Requirement::Keyless {
        trust_root: trust_root.to_owned(),
        identity: identity.to_owned(),
        issuer: OIDC_ISSUER.to_owned(),
    }
}

#[test]
fn keyless_bundle_verifies_offline_against_a_local_trust_root() {
    let dir = tempfile::tempdir().unwrap();
    let sigstore = local_sigstore();
    let trust_root = dir.path().join("trusted_root.json");
    write(&trust_root, sigstore.trust_root().to_string().as_bytes());
    let bytes = std::fs::read(common::component("echo")).unwrap();
    let component = dir.path().join("echo.wasm");
    write(&component, &bytes);
    write(
        &bundle_path(&component),
        sigstore
            .sign(&bytes, IDENTITY, OIDC_ISSUER)
            .to_string()
            .as_bytes(),
    );

    let signer = verify_file(&component, &keyless_requirement(&trust_root, IDENTITY))
        .expect("a good keyless bundle verifies");
    assert_eq!(
        signer,
        Signer::Keyless {
            identity: IDENTITY.into(),
            issuer: OIDC_ISSUER.into()
        }
    );

    // A wrong identity.
    let err = verify_file(
        &component,
        &keyless_requirement(
            &trust_root,
            "https://github.com/evil/tools/.github/workflows/x.yml@refs/heads/main",
        ),
    )
    .unwrap_err();
    assert!(err.contains("certificate identity does not match"), "{err}");
    assert!(
        err.contains(IDENTITY),
        "the message names the identity found: {err}"
    );

    // A wrong issuer.
    let err = verify_file(
        &component,
        &Requirement::Keyless {
            trust_root: trust_root.clone(),
            identity: IDENTITY.into(),
            issuer: "https://accounts.google.com".into(),
        },
    )
    .unwrap_err();
    assert!(err.contains("certificate identity does not match"), "{err}");
    assert!(err.contains(OIDC_ISSUER), "{err}");

    // One flipped byte in the component.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x01;
    write(&component, &flipped);
    let err = verify_file(&component, &keyless_requirement(&trust_root, IDENTITY)).unwrap_err();
    assert!(err.contains("does not match the component"), "{err}");
    write(&component, &bytes);

    // A certificate from a CA the trust root does not hold.
    let stranger = local_sigstore();
    write(
        &bundle_path(&component),
        stranger
            .sign(&bytes, IDENTITY, OIDC_ISSUER)
            .to_string()
            .as_bytes(),
    );
    let err = verify_file(&component, &keyless_requirement(&trust_root, IDENTITY)).unwrap_err();
    assert!(
        err.contains("does not chain to a CA of the trust root"),
        "{err}"
    );
}

/// Documents a limit of sigstore 0.15 (sigstore-rs#285), also stated in docs/SUPPLY-CHAIN.md:
/// the Rekor signed entry timestamp is not verified, so arbitrary bytes there pass. If the
/// crate starts checking it, this test fails and the documentation must be updated.
#[test]
fn keyless_signed_entry_timestamp_is_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let sigstore = local_sigstore();
    let trust_root = dir.path().join("trusted_root.json");
    write(&trust_root, sigstore.trust_root().to_string().as_bytes());
    let bytes = b"any artifact".to_vec();
    let component = dir.path().join("artifact.bin");
    write(&component, &bytes);
    let bundle = sigstore.sign(&bytes, IDENTITY, OIDC_ISSUER);
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"],
        B64.encode([0x5a; 70])
    );
    write(&bundle_path(&component), bundle.to_string().as_bytes());
    verify_file(&component, &keyless_requirement(&trust_root, IDENTITY))
        .expect("sigstore 0.15 does not verify the SET");
}

// ---------------------------------------------------------------------------------------------
// The gateway: strict mode, what policy sees, drift, reload, downloads.

fn gateway_config(dir: &Path, policies: &Path, components: Vec<ComponentConfig>) -> Config {
    let mut config = Config {
        components,
        ..Config::default()
    };
    config.policy.dir = Some(policies.to_owned());
    config.audit.path = Some(dir.join("audit.db"));
    config.supply_chain.pins = Some(dir.join("pins.json"));
    // Under target/, not a shared /tmp path: others could write native code into that.
    config.cache.dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
    config
}

fn allow_all() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/policies/allow-all"
    ))
}

fn component_at(path: &Path) -> ComponentConfig {
    ComponentConfig::from_path(None, path.to_owned())
}

/// `(phase supply) verdict, tool, reasons` of every supply entry, oldest first.
fn supply_entries(dir: &Path) -> Vec<(String, Option<String>, Vec<String>)> {
    let reader = gatehouse::audit::AuditReader::open(&dir.join("audit.db")).unwrap();
    reader
        .query(&gatehouse::audit::EntryFilter {
            phase: Some("supply".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| (e.verdict, e.tool, e.reasons))
        .collect()
}

fn caller() -> gatehouse::auth::Caller {
    gatehouse::auth::Caller {
        principal: "tester".into(),
        authenticated: true,
        transport: gatehouse::auth::Transport::Stdio,
        client: None,
        auth: gatehouse::auth::AuthMethod::Stdio,
        claims: Default::default(),
    }
}

#[test]
fn strict_mode_refuses_unsigned_and_badly_signed_components_and_audits_why() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_key();
    let (component, key_file) = signed_echo(dir.path(), &key);
    let strict = |signature: Option<SignatureConfig>| {
        let mut config = gateway_config(dir.path(), &allow_all(), vec![component_at(&component)]);
        config.supply_chain.mode = SupplyMode::Strict;
        config.supply_chain.signature = signature;
        config
    };

    let err = Gateway::from_config(&strict(None))
        .err()
        .expect("unsigned is refused")
        .to_string();
    assert!(
        err.contains("unsigned components are refused in strict mode"),
        "{err}"
    );

    let other = cosign_key();
    let other_key = dir.path().join("other.pub");
    write(&other_key, other.public_pem.as_bytes());
    let by_other_key = Some(SignatureConfig {
        key: Some(other_key),
        ..Default::default()
    });
    let err = Gateway::from_config(&strict(by_other_key))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("signature check failed"), "{err}");
    assert!(err.contains("does not verify with key"), "{err}");

    let refusals: Vec<_> = supply_entries(dir.path())
        .into_iter()
        .filter(|(verdict, ..)| verdict == "refused")
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals[0].2[0].contains("strict mode"), "{refusals:?}");
    assert!(
        refusals[1].2[0].contains("does not verify with key"),
        "{refusals:?}"
    );

    let good = Some(SignatureConfig {
        key: Some(key_file),
        ..Default::default()
    });
    let gateway = Gateway::from_config(&strict(good)).expect("a good signature loads");
    let provenance = &gateway.components()[0].provenance;
    assert!(provenance.signed);
    assert_eq!(
        provenance.signer,
        Some(Signer::Key {
            key_id: signature::key_id(&key.public_pem).unwrap()
        })
    );
}

#[test]
fn a_digest_mismatch_names_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let mut component = component_at(&common::component("echo"));
    let wrong = format!("sha256:{}", "ab".repeat(32));
    component.sha256 = Some(wrong.clone());
    let err = Gateway::from_config(&gateway_config(dir.path(), &allow_all(), vec![component]))
        .err()
        .expect("refused")
        .to_string();
    let actual = gatehouse::runtime::component::sha256_digest(
        &std::fs::read(common::component("echo")).unwrap(),
    );
    assert!(
        err.contains(&format!("expected {wrong}, got {actual}")),
        "{err}"
    );
}

#[test]
fn policy_sees_the_signer_and_can_require_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_key();
    let (component, key_file) = signed_echo(dir.path(), &key);
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    write(
        &policies.join("call.rego"),
        br#"package gatehouse.call

default allow := false

# Only tools signed with our release key may run.
allow if {
	input.tool.component.signed
	input.tool.component.signer.kind == "key"
	input.tool.component.signer.key_id == data.release_key
	not input.tool.definition_changed
}
"#,
    );
    write(
        &policies.join("list.rego"),
        b"package gatehouse.list\n\nallow := true\n",
    );
    write(
        &policies.join("data.json"),
        json!({"release_key": signature::key_id(&key.public_pem).unwrap()})
            .to_string()
            .as_bytes(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let call = |signature: Option<SignatureConfig>, audit: &str| {
        let mut config = gateway_config(dir.path(), &policies, vec![component_at(&component)]);
        config.audit.path = Some(dir.path().join(audit));
        config.supply_chain.signature = signature;
        let gateway = Gateway::from_config(&config).unwrap();
        let mut arguments = serde_json::Map::new();
        arguments.insert("message".into(), json!("hi"));
        runtime.block_on(gateway.call(&caller(), "echo_echo", Some(arguments)))
    };
    let signed = call(
        Some(SignatureConfig {
            key: Some(key_file),
            ..Default::default()
        }),
        "a.db",
    );
    assert!(
        matches!(&signed, gatehouse::gateway::CallResult::Completed { text, .. } if text == "hi"),
        "{signed:?}"
    );
    // The same file, loaded without a signature requirement (permissive mode): unsigned.
    let unsigned = call(None, "b.db");
    assert!(
        matches!(unsigned, gatehouse::gateway::CallResult::Denied { .. }),
        "{unsigned:?}"
    );
}

/// A core module exporting `add` with `params` u32 parameters, as a component whose WIT
/// world says so: the same tool name with a different input schema.
fn adder_component(params: usize) -> Vec<u8> {
    let names: Vec<String> = (0..params).map(|i| format!("p{i}: u32")).collect();
    let wit = format!(
        "package test:drift;\nworld adder {{\n  /// Adds numbers.\n  export add: func({}) -> u32;\n}}\n",
        names.join(", ")
    );
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve.push_str("adder.wit", &wit).unwrap();
    let world = resolve.select_world(&[package], Some("adder")).unwrap();
    let wasm_params = vec!["i32"; params].join(" ");
    let body: String = (0..params)
        .map(|i| format!("local.get {i} "))
        .chain((1..params).map(|_| "i32.add ".to_owned()))
        .collect();
    let wat = format!("(module (func (export \"add\") (param {wasm_params}) (result i32) {body}))");
    let mut module = wat::parse_str(&wat).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn a_changed_tool_definition_is_withheld_recorded_and_released_by_accept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adder.wasm");
    write(&path, &adder_component(2));
    let config = gateway_config(dir.path(), &allow_all(), vec![component_at(&path)]);
    let gateway = Gateway::from_config(&config).unwrap();
    assert!(gateway.tool("adder_add").is_some());

    // Replaced while serving by a version whose schema changed.
    write(&path, &adder_component(3));
    let report = gateway.reload_components(&config.components).unwrap();
    assert_eq!(report.replaced, ["adder"]);
    assert_eq!(report.withheld, ["adder_add"]);
    assert!(
        gateway.tool("adder_add").is_none(),
        "a drifted tool is withheld"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(gateway.call(&caller(), "adder_add", None));
    assert!(
        matches!(result, gatehouse::gateway::CallResult::UnknownTool(_)),
        "{result:?}"
    );

    let entries = supply_entries(dir.path());
    let drift: Vec<_> = entries.iter().filter(|(v, ..)| v == "drift").collect();
    assert_eq!(drift.len(), 1, "{entries:?}");
    assert_eq!(drift[0].1.as_deref(), Some("adder_add"));
    assert!(
        drift[0].2[0].contains("tool definition changed"),
        "{drift:?}"
    );
    assert!(
        drift[0].2[0].contains("gatehouse component accept adder_add"),
        "{drift:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(v, t, _)| v == "pinned" && t.as_deref() == Some("adder_add"))
    );

    // Still withheld after a restart.
    gateway.audit().close().unwrap();
    drop(gateway);
    let gateway = Gateway::from_config(&config).unwrap();
    assert!(gateway.tool("adder_add").is_none());

    // The operator accepts it (the CLI writes the pin file; the gateway re-reads it).
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["component", "accept", "adder", "--pins"])
        .arg(dir.path().join("pins.json"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("accepted adder_add"));
    assert_eq!(gateway.refresh_pins().unwrap(), ["adder_add"]);
    let result = runtime.block_on(gateway.call(
        &caller(),
        "adder_add",
        Some(serde_json::from_value(json!({"p0": 1, "p1": 2, "p2": 3})).unwrap()),
    ));
    assert!(
        matches!(&result, gatehouse::gateway::CallResult::Completed { text, .. } if text == "6"),
        "{result:?}"
    );
    assert!(
        supply_entries(dir.path())
            .iter()
            .any(|(v, t, _)| v == "accepted" && t.as_deref() == Some("adder_add"))
    );
}

#[test]
fn on_drift_allow_offers_the_tool_and_tells_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adder.wasm");
    write(&path, &adder_component(1));
    let mut config = gateway_config(dir.path(), &allow_all(), vec![component_at(&path)]);
    config.supply_chain.on_drift = DriftAction::Allow;
    let gateway = Gateway::from_config(&config).unwrap();
    assert!(!gateway.tool("adder_add").unwrap().definition_changed);
    write(&path, &adder_component(2));
    gateway.reload_components(&config.components).unwrap();
    assert!(gateway.tool("adder_add").unwrap().definition_changed);
}

#[test]
fn a_refused_replacement_keeps_the_previous_version_and_in_flight_tools_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_key();
    let (component, key_file) = signed_echo(dir.path(), &key);
    let mut config = gateway_config(dir.path(), &allow_all(), vec![component_at(&component)]);
    config.supply_chain.signature = Some(SignatureConfig {
        key: Some(key_file),
        ..Default::default()
    });
    let gateway = Gateway::from_config(&config).unwrap();
    let before = gateway.tool("echo_echo").unwrap();
    // Replaced by a component signed by nobody we trust: refused, the old one keeps serving.
    write(&component, &adder_component(1));
    let report = gateway.reload_components(&config.components).unwrap();
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(
        report.refused[0].contains("signature check failed"),
        "{report:?}"
    );
    let after = gateway
        .tool("echo_echo")
        .expect("the previous version still serves");
    assert!(std::sync::Arc::ptr_eq(&before.component, &after.component));
    // Removed from the configuration: gone, but a tool already taken keeps its component.
    let report = gateway.reload_components(&[]).unwrap();
    assert_eq!(report.removed, ["echo"]);
    assert!(gateway.tool("echo_echo").is_none());
    assert_eq!(before.component.name, "echo");
}

// ---------------------------------------------------------------------------------------------
// Downloads.

/// Serves `body` for `GET /<name>` (and 404 for anything else) on 127.0.0.1, `count` requests.
fn serve(files: Vec<(&'static str, Vec<u8>)>, count: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let found = files.iter().find(|(name, _)| path == format!("/{name}"));
            let response = match found {
                Some((_, body)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://{address}")
}

#[test]
fn downloads_are_digest_checked_size_capped_signed_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_key();
    let bytes = std::fs::read(common::component("echo")).unwrap();
    let digest = gatehouse::runtime::component::sha256_digest(&bytes);
    let bundle = key_bundle(&key, &bytes).to_string().into_bytes();
    let base = serve(
        vec![
            ("echo.wasm", bytes.clone()),
            ("echo.wasm.sigstore.json", bundle),
        ],
        4,
    );
    let mut supply = SupplyChainConfig::default();
    let fetcher = Fetcher::new(&supply, Some(dir.path().to_owned()));
    let url = Origin::parse(&format!("{base}/echo.wasm")).unwrap();

    let wrong = format!("sha256:{}", "00".repeat(32));
    let err = fetcher.fetch(&url, Some(&wrong)).unwrap_err().to_string();
    assert!(
        err.contains(&format!("expected {wrong}, got {digest}")),
        "{err}"
    );

    supply.max_download_bytes = 1000;
    let small = Fetcher::new(&supply, Some(dir.path().to_owned()));
    let err = small.fetch(&url, None).unwrap_err().to_string();
    assert!(err.contains("over the limit of 1000"), "{err}");

    // Through the gateway: downloaded, checked against the bundle beside it, cached by digest.
    let key_file = dir.path().join("cosign.pub");
    write(&key_file, key.public_pem.as_bytes());
    let component = ComponentConfig {
        url: Some(format!("{base}/echo.wasm")),
        sha256: Some(digest.clone()),
        signature: Some(SignatureConfig {
            key: Some(key_file),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut config = gateway_config(dir.path(), &allow_all(), vec![component]);
    config.cache.dir = Some(dir.path().join("cache"));
    let gateway = Gateway::from_config(&config).unwrap();
    let loaded = &gateway.components()[0];
    assert_eq!(loaded.name, "echo");
    assert_eq!(loaded.provenance.source, format!("{base}/echo.wasm"));
    assert!(loaded.provenance.signed);
    let cached = dir
        .path()
        .join("cache/downloads")
        .join(format!("{}.wasm", digest.trim_start_matches("sha256:")));
    assert_eq!(std::fs::read(cached).unwrap(), bytes);

    // Plain http:// is refused to anything but loopback; oci:// is a registry reference
    // (tests/oci.rs), and a scheme we do not know is refused.
    let err = Origin::parse("http://example.com/x.wasm").unwrap_err();
    assert!(err.contains("only allowed to a loopback address"), "{err}");
    assert!(matches!(
        Origin::parse("oci://ghcr.io/acme/tool:1"),
        Ok(Origin::Oci(_))
    ));
    let err = Origin::parse("ftp://example.com/x.wasm").unwrap_err();
    assert!(err.contains("unsupported URL scheme"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The command line.

fn gatehouse(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn component_verify_and_inspect_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = cosign_key();
    let (component, key_file) = signed_echo(dir.path(), &key);
    let component = component.to_str().unwrap();
    let key_file = key_file.to_str().unwrap();

    let (code, out, err) = gatehouse(&["component", "verify", component, "--key", key_file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is signed by key sha256:"), "{out}");

    let other = dir.path().join("other.pub");
    write(&other, cosign_key().public_pem.as_bytes());
    let (code, _, err) = gatehouse(&[
        "component",
        "verify",
        component,
        "--key",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refused: the signature does not verify with key"),
        "{err}"
    );

    let (code, out, err) = gatehouse(&["component", "inspect", component, "--key", key_file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("digest:    sha256:"), "{out}");
    assert!(
        out.contains("signature: verified: signed by key sha256:"),
        "{out}"
    );
    assert!(out.contains("exports (candidate tools):"), "{out}");
    assert!(
        out.contains("  echo — Returns `message` unchanged."),
        "{out}"
    );

    let fetch = common::component("fetch");
    let (code, out, err) = gatehouse(&["component", "inspect", fetch.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let imports = report["world"]["imports"].as_array().unwrap();
    assert!(
        imports.iter().any(|i| i["name"]
            .as_str()
            .unwrap()
            .starts_with("wasi:http/outgoing-handler")
            && i["capability"] == "outgoing HTTP requests"),
        "{imports:?}"
    );
    assert!(
        report["signature"]
            .as_str()
            .unwrap()
            .starts_with("unsigned: no bundle at")
    );
}

/// Serves `body` at any path over TLS on 127.0.0.1 with a freshly generated certificate for
/// that address, for `count` connections; returns the base URL and the certificate (PEM).
fn serve_tls(body: Vec<u8>, count: usize) -> (String, String) {
    use std::sync::Arc;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert_der = certified.cert.der().clone();
    let key_der =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key_der)
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(stream) = stream else { continue };
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut request = [0u8; 4096];
            if tls.read(&mut request).unwrap_or(0) == 0 {
                continue;
            }
            let mut response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            response.extend_from_slice(&body);
            let _ = tls.write_all(&response);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (format!("https://{address}"), cert_pem)
}

#[test]
fn https_sources_are_fetched_over_tls_trusting_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(common::component("echo")).unwrap();
    let digest = gatehouse::runtime::component::sha256_digest(&bytes);
    let (base, cert_pem) = serve_tls(bytes.clone(), 2);
    let url = Origin::parse(&format!("{base}/echo.wasm")).unwrap();

    // Without the private CA the server is not trusted.
    let untrusted = Fetcher::new(&SupplyChainConfig::default(), Some(dir.path().join("a")));
    let err = untrusted
        .fetch(&url, Some(&digest))
        .unwrap_err()
        .to_string();
    assert!(!err.is_empty());

    let ca_file = dir.path().join("ca.pem");
    write(&ca_file, cert_pem.as_bytes());
    let supply = SupplyChainConfig {
        ca_file: Some(ca_file),
        ..Default::default()
    };
    let trusted = Fetcher::new(&supply, Some(dir.path().join("b")));
    let fetched = trusted.fetch(&url, Some(&digest)).unwrap();
    assert_eq!(fetched.digest, digest);
    assert_eq!(fetched.bytes, bytes);
}

/// Pins hold the hash of each tool's definition as agents are shown it; if that rendering
/// changed, every operator's pins would report drift and withhold their tools after an
/// upgrade. These are the hashes the shipped test components' tools were pinned with.
#[test]
fn tool_definitions_hash_as_they_were_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let components = ["echo", "types", "fetch", "files"]
        .map(|name| component_at(&common::component(name)))
        .to_vec();
    let gateway = Gateway::from_config(&gateway_config(dir.path(), &allow_all(), components))
        .expect("the test components load");
    let hashes: std::collections::BTreeMap<String, String> = gateway
        .catalog()
        .tools
        .values()
        .map(|tool| {
            // What `tools/list` sends is exactly what the pin covers.
            let shown = serde_json::to_value(gatehouse::mcp::describe_tool(tool)).unwrap();
            assert_eq!(shown, tool.definition(), "{}", tool.name());
            let hash = gatehouse::supply::pins::definition_hash(&tool.definition());
            (tool.name().to_owned(), hash)
        })
        .collect();
    for (name, pinned) in PINNED_DEFINITIONS {
        assert_eq!(hashes.get(*name), Some(&pinned.to_string()), "{name}");
    }
}

/// One tool of each kind: plain, open-world (imports `wasi:http`), files, a record, a
/// `result` with an error case, floats, an interface export.
const PINNED_DEFINITIONS: &[(&str, &str)] = &[
    (
        "echo_echo",
        "sha256:4f119f6a9867cab338da0b54e25029c654abbbbaafcde9081804010ef8a23910",
    ),
    (
        "fetch_fetch",
        "sha256:543ec57c4803f0eb23d5519bd03c672b3cd0ee9c512d90304176bc715569461d",
    ),
    (
        "files_write-file",
        "sha256:57dbfbc0c3c211232cb1645b5046609edef111ea7e41b4c6863751b41e0a530f",
    ),
    (
        "types_directory_echo-person",
        "sha256:3f7aeb15be11dabe06f8f9afdf65cbd0677208c5a89f9023bed0e6f3b8a7e949",
    ),
    (
        "types_math_divide",
        "sha256:490caf3e8ddb9d483e153edf412fadf3090f46885877a4756b4c421ce36fd6bf",
    ),
    (
        "types_echo-f64",
        "sha256:c1dfd8615f4a1fa6f1358f408788f7d23ec93706d0304e9536d5e5d3033d7895",
    ),
    (
        "types_counters_max-value",
        "sha256:0db26530dbebe23a842ae7894b4d4550fec24a08ab682957540dc0fe370f891f",
    ),
];
