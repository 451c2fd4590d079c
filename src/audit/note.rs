//! C2SP signed notes with Ed25519 keys (<https://c2sp.org/signed-note>), the format Go's
//! `golang.org/x/mod/sumdb/note` and the transparency-log ecosystem use, so that checkpoints can
//! be checked with existing tools.
//!
//! - key id: the first 4 bytes of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`;
//! - verifier key text: `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`;
//! - signer key text (Go-compatible): `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 ‖ seed)>`;
//! - a signed note: `<text>` (ending in `\n`), an empty line, then one line per signature:
//!   `— <name> <base64(key id ‖ 64-byte signature over text)>`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::AuditError;

/// The C2SP algorithm byte for Ed25519.
const ALG_ED25519: u8 = 0x01;
/// Signature lines start with an em dash and a space.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4]`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A key name must be non-empty and free of `+`, whitespace and control characters.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("key name is empty".into());
    }
    if name
        .chars()
        .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "key name {name:?} contains '+', whitespace or a control character"
        ));
    }
    Ok(())
}

/// A checkpoint signing key.
pub struct NoteSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{})", self.name, hex::encode(self.id))
    }
}

impl NoteSigner {
    /// A fresh random key named `name`.
    pub fn generate(name: &str) -> Result<Self, String> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok(Self::from_seed(name, seed))
    }

    fn from_seed(name: &str, seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Self {
            name: name.to_owned(),
            id,
            key,
        }
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or("not a signer key (expected PRIVATE+KEY+<name>+<id>+<key>)")?;
        let (name, id, material) = split_key(rest)?;
        let bytes = decode_material(material)?;
        let signer = Self::from_seed(name, bytes);
        if signer.id != id {
            return Err(format!(
                "key id {} does not match the key (expected {})",
                hex::encode(id),
                hex::encode(signer.id)
            ));
        }
        Ok(signer)
    }

    /// Reads a signer key file.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let text = read_key_file(path)?;
        Self::parse(&text).map_err(|detail| AuditError::Key {
            path: path.to_owned(),
            detail,
        })
    }

    /// The Go-compatible private key text.
    pub fn to_private_text(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(material)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signature line for `text` (which must end in a newline), including its final `\n`.
    pub fn signature_line(&self, text: &str) -> String {
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, B64.encode(blob))
    }

    /// `text`, an empty line and this key's signature line: a complete signed note.
    pub fn sign_note(&self, text: &str) -> String {
        format!("{text}\n{}", self.signature_line(text))
    }

    /// Writes the private key (mode 0600, never overwriting) and `<path>.pub` with the verifier
    /// key. Returns the path of the public key file.
    pub fn write_key_files(&self, path: &Path) -> Result<PathBuf, AuditError> {
        write_new_file(
            path,
            format!("{}\n", self.to_private_text()).as_bytes(),
            0o600,
        )?;
        let public = public_key_path(path);
        write_new_file(
            &public,
            format!("{}\n", self.verifier().to_text()).as_bytes(),
            0o644,
        )?;
        Ok(public)
    }
}

/// `<key file>.pub`.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Creates `path` with `mode`; refuses to overwrite an existing file (a key is never replaced
/// silently: checkpoints signed with the old one would no longer verify).
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), AuditError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => AuditError::Key {
                path: path.to_owned(),
                detail: "already exists; refusing to overwrite a key".into(),
            },
            _ => AuditError::io(path, "creating key file", e),
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io(path, "writing key file", e))
}

fn read_key_file(path: &Path) -> Result<String, AuditError> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AuditError::KeyMissing {
            path: path.to_owned(),
        },
        _ => AuditError::io(path, "reading key file", e),
    })
}

/// Splits `<name>+<hex id>+<base64>` (the base64 may itself contain `+`).
fn split_key(text: &str) -> Result<(&str, [u8; 4], &str), String> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("malformed key: expected <name>+<key id>+<base64 key>".into());
    };
    check_name(name)?;
    if id.len() != 8 {
        return Err(format!("key id {id:?} is not 8 hex digits"));
    }
    let id: [u8; 4] = hex::decode(id)
        .map_err(|_| format!("key id {id:?} is not 8 hex digits"))?
        .try_into()
        .map_err(|_| "key id is not 4 bytes".to_string())?;
    Ok((name, id, material))
}

fn decode_material(material: &str) -> Result<[u8; 32], String> {
    let bytes = B64
        .decode(material)
        .map_err(|e| format!("key material is not base64: {e}"))?;
    match bytes.split_first() {
        Some((&ALG_ED25519, rest)) if rest.len() == 32 => Ok(rest.try_into().expect("32 bytes")),
        Some((&ALG_ED25519, rest)) => Err(format!(
            "Ed25519 key material has {} bytes, expected 32",
            rest.len()
        )),
        Some((alg, _)) => Err(format!(
            "key algorithm 0x{alg:02x} is not supported (only Ed25519, 0x01)"
        )),
        None => Err("key material is empty".into()),
    }
}

/// A checkpoint verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub signature: Vec<u8>,
}

impl NoteVerifier {
    /// Parses `<name>+<hex id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, id, material) = split_key(text.trim())?;
        let bytes = decode_material(material)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| format!("not a valid Ed25519 public key: {e}"))?;
        if key_id(name, &bytes) != id {
            return Err(format!(
                "key id {} does not match the key (expected {})",
                hex::encode(id),
                hex::encode(key_id(name, &bytes))
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Reads a verifier key file (as written by `gatehouse audit keygen`).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let text = read_key_file(path)?;
        Self::parse(&text).map_err(|detail| AuditError::Key {
            path: path.to_owned(),
            detail,
        })
    }

    pub fn to_text(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            B64.encode(material)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.id
    }

    /// Whether one of `signatures` is a valid signature of `text` by this key. A signature with
    /// our name and key id that does not verify is an error, not merely "absent".
    pub fn check(&self, text: &str, signatures: &[NoteSignature]) -> Result<(), String> {
        let mine: Vec<&NoteSignature> = signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_id == self.id)
            .collect();
        if mine.is_empty() {
            let present: Vec<String> = signatures
                .iter()
                .map(|s| format!("{}+{}", s.name, hex::encode(s.key_id)))
                .collect();
            return Err(if present.is_empty() {
                format!(
                    "unsigned; expected a signature by {}+{}",
                    self.name,
                    hex::encode(self.id)
                )
            } else {
                format!(
                    "no signature by {}+{} (signed by: {})",
                    self.name,
                    hex::encode(self.id),
                    present.join(", ")
                )
            });
        }
        for sig in mine {
            let sig = Signature::from_slice(&sig.signature)
                .map_err(|e| format!("malformed signature: {e}"))?;
            self.key
                .verify(text.as_bytes(), &sig)
                .map_err(|_| format!("signature by {} does not verify", self.name))?;
        }
        Ok(())
    }
}

/// A parsed signed note: its text (ending in `\n`) and its signatures (possibly none, for the
/// unsigned checkpoints written when no key is configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a note: text, then optionally an empty line and signature lines.
    pub fn parse(note: &str) -> Result<Self, String> {
        let (text, sig_block) = match note.rfind("\n\n") {
            Some(i) => (&note[..i + 1], Some(&note[i + 2..])),
            None => (note, None),
        };
        if !text.ends_with('\n') {
            return Err("note text does not end with a newline".into());
        }
        let mut signatures = Vec::new();
        if let Some(block) = sig_block {
            if block.is_empty() || !block.ends_with('\n') {
                return Err("signature block is empty or lacks its final newline".into());
            }
            for line in block.lines() {
                signatures.push(parse_signature_line(line)?);
            }
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }
}

/// Parses `— <name> <base64(key id ‖ signature)>`.
pub fn parse_signature_line(line: &str) -> Result<NoteSignature, String> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| format!("signature line {line:?} does not start with \"— \""))?;
    let (name, blob) = rest
        .split_once(' ')
        .ok_or_else(|| format!("signature line {line:?} lacks a signature"))?;
    check_name(name)?;
    let blob = B64
        .decode(blob)
        .map_err(|e| format!("signature of {name} is not base64: {e}"))?;
    if blob.len() < 5 {
        return Err(format!("signature of {name} is too short"));
    }
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: blob[..4].try_into().expect("4 bytes"),
        signature: blob[4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The reference key pair and note of golang.org/x/mod/sumdb/note.
    const GO_SIGNER: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n\
                           \n\
                           \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn reproduces_the_go_reference_note() {
        let signer = NoteSigner::parse(GO_SIGNER).unwrap();
        assert_eq!(signer.verifier().to_text(), GO_VERIFIER);
        assert_eq!(signer.to_private_text(), GO_SIGNER);
        assert_eq!(signer.sign_note(GO_TEXT), GO_NOTE);
        let verifier = NoteVerifier::parse(GO_VERIFIER).unwrap();
        let note = Note::parse(GO_NOTE).unwrap();
        assert_eq!(note.text, GO_TEXT);
        verifier.check(&note.text, &note.signatures).unwrap();
        let altered = note.text.replace("cryptography", "cryptographY");
        assert!(verifier.check(&altered, &note.signatures).is_err());
    }

    #[test]
    fn rejects_malformed_and_mismatched_keys() {
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        assert!(NoteVerifier::parse("Peter+Neumann").is_err());
        assert!(NoteVerifier::parse("PeterNeumann+c74f20a3+AhpcQ==").is_err());
        assert!(NoteSigner::parse(GO_VERIFIER).is_err());
        let other = NoteSigner::generate("PeterNeumann").unwrap().verifier();
        let note = Note::parse(GO_NOTE).unwrap();
        let err = other.check(&note.text, &note.signatures).unwrap_err();
        assert!(err.contains("no signature by"), "{err}");
    }

    #[test]
    fn unsigned_note_parses_without_signatures() {
        let note = Note::parse("origin\n3\nAAAA\n").unwrap();
        assert!(note.signatures.is_empty());
        let v = NoteVerifier::parse(GO_VERIFIER).unwrap();
        assert!(
            v.check(&note.text, &note.signatures)
                .unwrap_err()
                .contains("unsigned")
        );
    }
}
