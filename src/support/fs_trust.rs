//! Whether a file or directory may be trusted: owned by the gateway's effective user and not
//! writable (or, for secrets, not accessible at all) by anyone else. Shared by the compiled
//! component cache (`runtime::cache`) and the state directory holding the audit keys
//! (`audit::state`), so both apply the same rules and open directories the same way.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};

/// Why a directory, entry or key file is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    #[error("it is a symbolic link")]
    Symlink,
    #[error("it is not a {expected}")]
    WrongType { expected: &'static str },
    #[error("it is owned by uid {owner}, not by the gateway's effective uid {euid}")]
    ForeignOwner { owner: u32, euid: u32 },
    #[error("it is writable by group or others (mode {mode:04o})")]
    Writable { mode: u32 },
    #[error("it is readable or writable by group or others (mode {mode:04o})")]
    Exposed { mode: u32 },
}

/// What a file must be to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The cache directory.
    Directory,
    /// A cache entry: written only by us.
    Entry,
    /// The MAC key: written and read only by us.
    Key,
    /// A directory of secrets (the gateway's state directory): no access by anyone else.
    PrivateDirectory,
}

/// Decides whether a file with this `fstat` result may be trusted by a process running as
/// `euid`: a pure function, so the rules are testable without other users or root.
pub fn check(
    file_type: FileType,
    owner: u32,
    mode: u32,
    euid: u32,
    expect: Expect,
) -> Result<(), Distrust> {
    let (wanted, name) = match expect {
        Expect::Directory | Expect::PrivateDirectory => (FileType::Directory, "directory"),
        Expect::Entry | Expect::Key => (FileType::RegularFile, "regular file"),
    };
    if file_type == FileType::Symlink {
        return Err(Distrust::Symlink);
    }
    if file_type != wanted {
        return Err(Distrust::WrongType { expected: name });
    }
    if owner != euid {
        return Err(Distrust::ForeignOwner { owner, euid });
    }
    let mode = mode & 0o7777;
    match expect {
        Expect::Key | Expect::PrivateDirectory if mode & 0o077 != 0 => {
            Err(Distrust::Exposed { mode })
        }
        _ if mode & 0o022 != 0 => Err(Distrust::Writable { mode }),
        _ => Ok(()),
    }
}

pub(crate) fn check_stat(stat: &Stat, expect: Expect) -> Result<(), Distrust> {
    check(
        FileType::from_raw_mode(stat.st_mode),
        stat.st_uid,
        stat.st_mode,
        rustix::process::geteuid().as_raw(),
        expect,
    )
}

/// Why [`open_dir`] failed.
#[derive(Debug)]
pub enum OpenError {
    /// The directory exists but fails [`check`].
    Untrusted(Distrust),
    /// It could not be created, opened or examined (the text says which and why).
    Io(String),
}

/// Creates `path` (mode 0700, parents too) when missing, opens it without following a symbolic
/// link and checks the opened handle with `fstat`, so the directory examined is the one used:
/// later accesses through the returned handle are not affected by a renamed or replaced path.
pub fn open_dir(path: &Path, expect: Expect) -> Result<OwnedFd, OpenError> {
    create_private_dir(path).map_err(|e| OpenError::Io(format!("cannot create it ({e})")))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()) {
        Ok(dir) => dir,
        // O_NOFOLLOW on a symbolic link fails (ELOOP, or ENOTDIR with O_DIRECTORY).
        Err(_)
            if path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            return Err(OpenError::Untrusted(Distrust::Symlink));
        }
        Err(errno) => {
            return Err(OpenError::Io(format!(
                "cannot open it ({})",
                std::io::Error::from(errno)
            )));
        }
    };
    let stat = rustix::fs::fstat(&dir)
        .map_err(|e| OpenError::Io(format!("cannot stat it ({})", std::io::Error::from(e))))?;
    check_stat(&stat, expect).map_err(OpenError::Untrusted)?;
    Ok(dir)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1000;

    #[test]
    fn a_private_directory_admits_no_one_else_at_all() {
        let dir = FileType::Directory;
        let private = |mode| check(dir, ME, mode, ME, Expect::PrivateDirectory);
        assert_eq!(private(0o40700), Ok(()));
        assert_eq!(private(0o750), Err(Distrust::Exposed { mode: 0o750 }));
        assert_eq!(private(0o701), Err(Distrust::Exposed { mode: 0o701 }));
        assert_eq!(private(0o770), Err(Distrust::Exposed { mode: 0o770 }));
        assert_eq!(
            check(dir, 0, 0o700, ME, Expect::PrivateDirectory),
            Err(Distrust::ForeignOwner { owner: 0, euid: ME })
        );
        // The compile cache's directory only has to be unwritable by others.
        assert_eq!(check(dir, ME, 0o755, ME, Expect::Directory), Ok(()));
    }
}
