//! The gateway's state directory: the audit keys of this installation, kept apart from the log.
//!
//! Checkpoints are signed by default, like an SSH host key: on first start an Ed25519 key
//! ([`CHECKPOINT_KEY`], 0600) and its C2SP verifier key ([`CHECKPOINT_PUBLIC_KEY`]) are created
//! here, and `gatehouse audit verify` finds the public key here too. The redaction key
//! ([`REDACTION_KEY`]) lives here as well, so that whoever may read the log file (an auditor, a
//! backup) does not also get the key that would let them test guesses against redacted values.
//!
//! The directory must be owned by the gateway's user and closed to everyone else (mode 0700,
//! created so when missing): anyone who could write there could swap the signing key, and anyone
//! who could read it could sign a rebuilt log. The check is [`crate::fs_trust`]'s, the same the
//! compiled-component cache makes.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::AuditError;
use super::note::{NoteSigner, NoteVerifier};
use super::redact::RedactionKey;
use crate::fs_trust::{self, Distrust, Expect};

/// The checkpoint signing key created on first start (Go signer key format).
pub const CHECKPOINT_KEY: &str = "audit-checkpoint.key";
/// Its C2SP verifier key, what `audit verify` uses when no `--pubkey` is given.
pub const CHECKPOINT_PUBLIC_KEY: &str = "audit-checkpoint.key.pub";
/// The secret redaction key (64 hex digits).
pub const REDACTION_KEY: &str = "audit-redaction.key";
/// The name in the signature lines of checkpoints signed with the installation's key.
pub const CHECKPOINT_KEY_NAME: &str = "gatehouse-audit";

/// The default state directory: `$XDG_STATE_HOME/gatehouse`, else `~/.local/state/gatehouse`.
/// The XDG base-directory spec puts data that should survive restarts but is not configuration
/// there; and it is per user, so a gateway running as its own service user gets a directory
/// only that user can reach. `None` when neither variable is set to an absolute path.
pub fn default_key_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_STATE_HOME")
        .map(|state| state.join("gatehouse"))
        .or_else(|| absolute("HOME").map(|home| home.join(".local/state/gatehouse")))
}

/// A state directory that passed the ownership and permission checks.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// Held open so the checked directory stays the one we checked while we use it.
    _dir: OwnedFd,
}

impl StateDir {
    /// Opens `path`, creating it with mode 0700 when missing; refuses one that is a symbolic
    /// link, belongs to another user or is accessible to group or others.
    pub fn open(path: &Path) -> Result<StateDir, AuditError> {
        let dir = fs_trust::open_dir(path, Expect::PrivateDirectory).map_err(|e| match e {
            fs_trust::OpenError::Untrusted(distrust) => untrusted(path, distrust, true),
            fs_trust::OpenError::Io(detail) => AuditError::StateDir {
                path: path.to_owned(),
                detail,
                fix: "create it (mode 0700) or name another with --audit-key-dir".into(),
            },
        })?;
        Ok(StateDir {
            path: path.to_owned(),
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The installation's checkpoint signing key, created on first use. Two gateways starting at
    /// once both end up with the key the first of them placed: each writes its candidate to a
    /// temporary file and links it into place, which fails rather than overwrites.
    pub fn checkpoint_key(&self) -> Result<NoteSigner, AuditError> {
        let path = self.path.join(CHECKPOINT_KEY);
        let signer = match self.load_private(&path, NoteSigner::load)? {
            Some(signer) => signer,
            None => {
                let candidate = NoteSigner::generate(CHECKPOINT_KEY_NAME).map_err(|detail| {
                    AuditError::Key {
                        path: path.clone(),
                        detail,
                    }
                })?;
                let text = format!("{}\n", candidate.to_private_text());
                if self.place(CHECKPOINT_KEY, text.as_bytes(), 0o600)? {
                    candidate
                } else {
                    // Another process placed its key first: use that one.
                    self.load_private(&path, NoteSigner::load)?
                        .ok_or_else(|| AuditError::KeyMissing { path: path.clone() })?
                }
            }
        };
        self.publish(&signer.verifier())?;
        Ok(signer)
    }

    /// The redaction key. A log that kept its key beside itself (`<db>.redaction-key`, before the
    /// state directory existed) has it moved here, so redacted values stay linkable across the
    /// upgrade and the log's directory no longer holds it; a different key already here is an
    /// error rather than a silent choice between the two.
    pub fn redaction_key(&self, legacy: &Path) -> Result<RedactionKey, AuditError> {
        let path = self.path.join(REDACTION_KEY);
        if legacy.exists() {
            let old = RedactionKey::load_or_create(legacy)?;
            let text = format!("{}\n", old.to_hex());
            if !self.place(REDACTION_KEY, text.as_bytes(), 0o600)?
                && self
                    .load_private(&path, RedactionKey::load_or_create)?
                    .is_none_or(|current| current != old)
            {
                return Err(AuditError::Key {
                    path: legacy.to_owned(),
                    detail: format!(
                        "the log's old redaction key differs from the installation's {}; keep \
                         the one whose hashes you need linkable and move the other away",
                        path.display()
                    ),
                });
            }
            std::fs::remove_file(legacy)
                .map_err(|e| AuditError::io(legacy, "removing the moved redaction key", e))?;
            tracing::warn!(
                from = %legacy.display(),
                to = %path.display(),
                "moved the audit log's redaction key into the state directory, away from the log"
            );
            return Ok(old);
        }
        if let Some(key) = self.load_private(&path, RedactionKey::load_or_create)? {
            return Ok(key);
        }
        // Placed whole, like the checkpoint key: a gateway starting at the same moment must never
        // read a half-written key file.
        let candidate = RedactionKey::generate().map_err(|detail| AuditError::Key {
            path: path.clone(),
            detail,
        })?;
        let text = format!("{}\n", candidate.to_hex());
        if self.place(REDACTION_KEY, text.as_bytes(), 0o600)? {
            return Ok(candidate);
        }
        self.load_private(&path, RedactionKey::load_or_create)?
            .ok_or(AuditError::KeyMissing { path })
    }

    /// Loads a secret file of ours after checking it is a private regular file; `None` when it
    /// does not exist.
    fn load_private<T>(
        &self,
        path: &Path,
        load: impl Fn(&Path) -> Result<T, AuditError>,
    ) -> Result<Option<T>, AuditError> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AuditError::io(path, "examining key file", e)),
        };
        fs_trust::check(
            rustix::fs::FileType::from_raw_mode(meta.mode()),
            meta.uid(),
            meta.mode(),
            rustix::process::geteuid().as_raw(),
            Expect::Key,
        )
        .map_err(|distrust| untrusted(path, distrust, false))?;
        load(path).map(Some)
    }

    /// Writes the verifier key beside the private key, or checks the one there matches it: a
    /// public key swapped for another would make `audit verify` check the wrong signatures.
    fn publish(&self, verifier: &NoteVerifier) -> Result<(), AuditError> {
        let path = self.path.join(CHECKPOINT_PUBLIC_KEY);
        let text = format!("{}\n", verifier.to_text());
        if self.place(CHECKPOINT_PUBLIC_KEY, text.as_bytes(), 0o644)? {
            return Ok(());
        }
        if NoteVerifier::load(&path)? != *verifier {
            return Err(AuditError::Key {
                path,
                detail: format!(
                    "does not match the signing key {}; remove it and restart to write the right \
                     one",
                    self.path.join(CHECKPOINT_KEY).display()
                ),
            });
        }
        Ok(())
    }

    /// Creates `name` with `contents` unless it exists: written completely to a temporary file
    /// first, then hard-linked into place (never replacing). `false` when `name` already existed.
    fn place(&self, name: &str, contents: &[u8], mode: u32) -> Result<bool, AuditError> {
        let target = self.path.join(name);
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| AuditError::Key {
            path: target.clone(),
            detail: format!("no randomness: {e}"),
        })?;
        let tmp = self
            .path
            .join(format!(".{name}.{}.tmp", hex::encode(nonce)));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()));
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, &target));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(AuditError::io(&target, "creating key file", e)),
        }
    }
}

/// The error for a directory or key file that fails the check, with the command that fixes it.
fn untrusted(path: &Path, distrust: Distrust, directory: bool) -> AuditError {
    let shown = path.display();
    let (chmod, kind) = if directory {
        ("700", "directory")
    } else {
        ("600", "file")
    };
    let fix = match &distrust {
        Distrust::Writable { .. } | Distrust::Exposed { .. } => format!("chmod {chmod} {shown}"),
        Distrust::ForeignOwner { euid, .. } => format!(
            "chown {euid} {shown} && chmod {chmod} {shown} (or give --audit-key-dir a directory \
             of the gateway's user)"
        ),
        Distrust::Symlink | Distrust::WrongType { .. } => {
            format!("replace {shown} by a real {kind}, or give --audit-key-dir another directory")
        }
    };
    AuditError::StateDir {
        path: path.to_owned(),
        detail: distrust.to_string(),
        fix,
    }
}
