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
//! who could read it could sign a rebuilt log. The check is [`crate::support::fs_trust`]'s, the same the
//! compiled-component cache makes.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::AuditError;
use super::note::{NoteSigner, NoteVerifier};
use super::redact::RedactionKey;
use crate::support::fs_trust::{self, Distrust, Expect};

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
    /// For messages only: every access goes through `dir` (`openat`), so renaming or replacing
    /// the path after the check changes nothing, as in the compiled-component cache.
    path: PathBuf,
    dir: OwnedFd,
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
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The installation's checkpoint signing key, created on first use. Two gateways starting at
    /// once both end up with the key the first of them placed: each writes its candidate to a
    /// temporary file and links it into place, which fails rather than overwrites.
    pub fn checkpoint_key(&self) -> Result<NoteSigner, AuditError> {
        let signer = self.load_or_place(CHECKPOINT_KEY, NoteSigner::parse, || {
            let signer = NoteSigner::generate(CHECKPOINT_KEY_NAME)?;
            let text = format!("{}\n", signer.to_private_text());
            Ok((signer, text))
        })?;
        self.publish(&signer.verifier())?;
        Ok(signer)
    }

    /// The redaction key. A log that kept its key beside itself (`<db>.redaction-key`, before the
    /// state directory existed) has it moved here, so redacted values stay linkable across the
    /// upgrade and the log's directory no longer holds it; a different key already here is an
    /// error rather than a silent choice between the two.
    pub fn redaction_key(&self, legacy: &Path) -> Result<RedactionKey, AuditError> {
        if !legacy.exists() {
            return self.load_or_place(REDACTION_KEY, RedactionKey::parse, || {
                let key = RedactionKey::generate()?;
                let text = format!("{}\n", key.to_hex());
                Ok((key, text))
            });
        }
        let old = RedactionKey::load_or_create(legacy)?;
        let kept = self.load_or_place(REDACTION_KEY, RedactionKey::parse, || {
            Ok((old.clone(), format!("{}\n", old.to_hex())))
        })?;
        let path = self.path.join(REDACTION_KEY);
        if kept != old {
            return Err(AuditError::Key {
                path: legacy.to_owned(),
                detail: format!(
                    "the log's old redaction key differs from the installation's {}; keep the \
                     one whose hashes you need linkable and move the other away",
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
        Ok(old)
    }

    /// The secret `name`, parsed; created from `new` if missing. Whoever places it first wins:
    /// a process that loses the race uses the winner's, never a half-written file.
    fn load_or_place<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
        new: impl FnOnce() -> Result<(T, String), String>,
    ) -> Result<T, AuditError> {
        let path = self.path.join(name);
        let key_error = |detail| AuditError::Key {
            path: path.clone(),
            detail,
        };
        if let Some(text) = self.read(name, Expect::Key)? {
            return parse(text.trim()).map_err(key_error);
        }
        let (value, text) = new().map_err(key_error)?;
        if self.place(name, text.as_bytes(), 0o600)? {
            return Ok(value);
        }
        let text = self
            .read(name, Expect::Key)?
            .ok_or_else(|| AuditError::KeyMissing { path: path.clone() })?;
        parse(text.trim()).map_err(key_error)
    }

    /// Writes the verifier key beside the private key, or checks the one there matches it: a
    /// public key swapped for another would make `audit verify` check the wrong signatures.
    fn publish(&self, verifier: &NoteVerifier) -> Result<(), AuditError> {
        let path = self.path.join(CHECKPOINT_PUBLIC_KEY);
        let text = format!("{}\n", verifier.to_text());
        if self.place(CHECKPOINT_PUBLIC_KEY, text.as_bytes(), 0o644)? {
            return Ok(());
        }
        let found = self
            .read(CHECKPOINT_PUBLIC_KEY, Expect::Entry)?
            .unwrap_or_default();
        if NoteVerifier::parse(found.trim()).ok().as_ref() != Some(verifier) {
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

    /// The text of `name` after checking the opened file (never a symbolic link) is ours and
    /// meets `expect`; `None` when it does not exist.
    fn read(&self, name: &str, expect: Expect) -> Result<Option<String>, AuditError> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
        let file = match rustix::fs::openat(&self.dir, name, flags, Mode::empty()) {
            Ok(file) => file,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(untrusted(&path, Distrust::Symlink, false)),
            Err(errno) => return Err(AuditError::io(&path, "opening key file", errno.into())),
        };
        let stat = rustix::fs::fstat(&file)
            .map_err(|e| AuditError::io(&path, "examining key file", e.into()))?;
        fs_trust::check_stat(&stat, expect).map_err(|d| untrusted(&path, d, false))?;
        let mut text = String::new();
        std::fs::File::from(file)
            .read_to_string(&mut text)
            .map_err(|e| AuditError::io(&path, "reading key file", e))?;
        Ok(Some(text))
    }

    /// Creates `name` with `contents` unless it exists: written completely to a temporary file
    /// first, then hard-linked into place (never replacing). `false` when `name` already existed.
    fn place(&self, name: &str, contents: &[u8], mode: u32) -> Result<bool, AuditError> {
        let target = self.path.join(name);
        let io_error = |e: std::io::Error| AuditError::io(&target, "creating key file", e);
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| io_error(std::io::Error::other(format!("no randomness: {e}"))))?;
        let tmp = format!(".{name}.{}.tmp", hex::encode(nonce));
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.dir, tmp.as_str(), flags, Mode::from_raw_mode(mode))
            .map_err(|e| io_error(e.into()))?;
        let mut file = std::fs::File::from(fd);
        let linked = file
            .write_all(contents)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                rustix::fs::linkat(&self.dir, tmp.as_str(), &self.dir, name, AtFlags::empty())
                    .map_err(std::io::Error::from)
            });
        let _ = rustix::fs::unlinkat(&self.dir, tmp.as_str(), AtFlags::empty());
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error(e)),
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
