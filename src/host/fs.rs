//! Our `wasi:filesystem`: wasmtime-wasi's implementation, wrapped so that every operation that
//! names a path is first checked against the mount and then decided by the policy (`fs`).
//!
//! wasmtime-wasi (on cap-std) already confines each descriptor to its own directory tree:
//! `..` past it, absolute paths and symlinks that leave it fail in the kernel-level lookup.
//! We add three things on top:
//!
//! - **A guest path for every descriptor.** We remember where each descriptor the tool holds
//!   lies (the preopen's guest path plus what was opened under it), so a path is decided as the
//!   absolute guest path the tool means (`/data/reports/q3.csv`), after `.` and `..` are
//!   resolved lexically.
//! - **Refusals regardless of policy.** Absolute paths, `..` above the directory it is relative
//!   to, symlinks whose contents are absolute or climb out of their mount, and hard links
//!   across mounts are refused before anything touches the disk, and recorded as denials.
//! - **A decision per operation.** open (with its flags and access), stat, set-times,
//!   readlink, read-directory, create-directory, remove-directory, unlink, rename, link,
//!   symlink and metadata-hash are each decided by `gatehouse.fs`.
//!
//! Reads and writes on an open descriptor are bounded by the flags the open was allowed with
//! (wasmtime-wasi refuses a write on a descriptor opened for reading) and by the mount's
//! read-only flag.
//!
//! What the policy sees is lexical: a symlink that already exists inside a mount and points
//! elsewhere inside the same mount is followed by the lookup, so prefixes within one mount are
//! only as strong as the links in it. Mount only what a tool may see.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, DescriptorFlags, ErrorCode, HostDescriptor, HostDirectoryEntryStream, OpenFlags,
    PathFlags,
};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types as fs_types};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

use super::guard::{Access, FsAccess, HostGuard, HostRequest};

/// Where each open descriptor of one call lies, by resource id.
#[derive(Debug, Default)]
pub struct DescriptorPaths {
    by_descriptor: HashMap<u32, GuestDir>,
}

/// A location inside a mount: the mount's guest path and the path segments below it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GuestDir {
    mount: Arc<str>,
    segments: Vec<String>,
}

impl GuestDir {
    /// The absolute guest path, e.g. `/data/reports`.
    fn guest_path(&self) -> String {
        join_guest_path(&self.mount, &self.segments)
    }
}

fn join_guest_path(mount: &str, segments: &[String]) -> String {
    let mut path = mount.trim_end_matches('/').to_owned();
    for segment in segments {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Why a path was refused before the policy was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathRefusal {
    Absolute,
    ClimbsOut,
    UnknownDescriptor,
}

impl PathRefusal {
    fn reason(&self, path: &str) -> String {
        match self {
            PathRefusal::Absolute => {
                format!("absolute path {path:?}: paths must be relative to an open directory")
            }
            PathRefusal::ClimbsOut => format!(
                "path {path:?} climbs above the directory it is relative to (no way out of a mount)"
            ),
            PathRefusal::UnknownDescriptor => {
                format!("path {path:?} is relative to a descriptor the gateway did not open")
            }
        }
    }
}

/// A path named by the tool, resolved against its directory descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResolvedPath {
    /// Where the path points.
    location: GuestDir,
    /// The path relative to the descriptor with `.` and `..` removed (`.` for itself): what is
    /// handed to the real implementation, so the decided path is the one looked up.
    relative: String,
}

/// Resolves `path` (relative to `base`) lexically, refusing absolute paths and any `..` that
/// climbs above `base`.
fn resolve(base: &GuestDir, path: &str) -> Result<ResolvedPath, PathRefusal> {
    if path.starts_with('/') {
        return Err(PathRefusal::Absolute);
    }
    let mut below: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                below.pop().ok_or(PathRefusal::ClimbsOut)?;
            }
            name => below.push(name),
        }
    }
    let relative = if below.is_empty() {
        ".".to_owned()
    } else {
        below.join("/")
    };
    let mut segments = base.segments.clone();
    segments.extend(below.iter().map(|s| (*s).to_owned()));
    Ok(ResolvedPath {
        location: GuestDir {
            mount: base.mount.clone(),
            segments,
        },
        relative,
    })
}

/// Resolves the contents of a symlink created at `link` (a resolved location): relative to
/// the link's directory, and never outside the link's mount.
fn resolve_link_target(link: &GuestDir, contents: &str) -> Result<GuestDir, PathRefusal> {
    if contents.starts_with('/') {
        return Err(PathRefusal::Absolute);
    }
    let mut segments = link.segments.clone();
    segments.pop();
    for segment in contents.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(PathRefusal::ClimbsOut)?;
            }
            name => segments.push(name.to_owned()),
        }
    }
    Ok(GuestDir {
        mount: link.mount.clone(),
        segments,
    })
}

/// Names of the open flags, as `input.fs.flags` lists them.
fn flag_names(open: OpenFlags, descriptor: DescriptorFlags) -> Vec<&'static str> {
    let mut names = Vec::new();
    for (set, name) in [
        (open.contains(OpenFlags::CREATE), "create"),
        (open.contains(OpenFlags::DIRECTORY), "directory"),
        (open.contains(OpenFlags::EXCLUSIVE), "exclusive"),
        (open.contains(OpenFlags::TRUNCATE), "truncate"),
        (descriptor.contains(DescriptorFlags::READ), "read"),
        (descriptor.contains(DescriptorFlags::WRITE), "write"),
        (
            descriptor.contains(DescriptorFlags::MUTATE_DIRECTORY),
            "mutate-directory",
        ),
    ] {
        if set {
            names.push(name);
        }
    }
    names
}

/// Whether an open with these flags can change anything.
fn open_access(open: OpenFlags, descriptor: DescriptorFlags) -> Access {
    let writes = open.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::EXCLUSIVE)
        || descriptor.intersects(DescriptorFlags::WRITE | DescriptorFlags::MUTATE_DIRECTORY);
    if writes { Access::Write } else { Access::Read }
}

/// `wasi:filesystem` for one call's store: wasmtime-wasi's view plus our bookkeeping.
pub struct GuardedFilesystem<'a> {
    pub inner: WasiFilesystemCtxView<'a>,
    pub paths: &'a mut DescriptorPaths,
    pub guard: &'a dyn HostGuard,
}

/// The [`HasData`] marker under which [`GuardedFilesystem`] is linked.
pub struct GuardedFs;

impl HasData for GuardedFs {
    type Data<'a> = GuardedFilesystem<'a>;
}

/// What one path-taking operation asks for, before it is resolved.
struct PathOperation<'p> {
    operation: &'static str,
    path: &'p str,
    access: Access,
    flags: Vec<&'static str>,
}

impl GuardedFilesystem<'_> {
    fn base(&self, fd: &Resource<Descriptor>) -> Option<&GuestDir> {
        self.paths.by_descriptor.get(&fd.rep())
    }

    /// Records a refusal made by the host itself (no policy could allow it).
    fn refuse(
        &self,
        operation: &'static str,
        shown_path: String,
        mount: &str,
        access: Access,
        reason: String,
    ) {
        self.guard.refuse(
            HostRequest::Fs(FsAccess {
                operation,
                path: shown_path,
                mount: mount.to_owned(),
                access,
                target: None,
                flags: Vec::new(),
            }),
            reason,
        );
    }

    /// Resolves a path against `fd`, refusing (and recording) what leaves the mount.
    fn resolve_or_refuse(
        &self,
        fd: &Resource<Descriptor>,
        op: &PathOperation<'_>,
    ) -> FsResult<ResolvedPath> {
        let Some(base) = self.base(fd) else {
            let reason = PathRefusal::UnknownDescriptor.reason(op.path);
            self.refuse(op.operation, op.path.to_owned(), "", op.access, reason);
            return Err(ErrorCode::NotPermitted.into());
        };
        resolve(base, op.path).map_err(|refusal| {
            let shown = format!("{}/{}", base.guest_path().trim_end_matches('/'), op.path);
            let mount = base.mount.clone();
            self.refuse(
                op.operation,
                shown,
                &mount,
                op.access,
                refusal.reason(op.path),
            );
            FsError::from(ErrorCode::NotPermitted)
        })
    }

    /// Asks the policy about one operation on `location`.
    fn decide(
        &self,
        op: PathOperation<'_>,
        location: &GuestDir,
        target: Option<&GuestDir>,
    ) -> FsResult<()> {
        let verdict = self.guard.decide(HostRequest::Fs(FsAccess {
            operation: op.operation,
            path: location.guest_path(),
            mount: location.mount.to_string(),
            access: op.access,
            target: target.map(GuestDir::guest_path),
            flags: op.flags,
        }));
        if verdict.allowed {
            Ok(())
        } else {
            Err(ErrorCode::Access.into())
        }
    }

    /// Resolves and decides a single-path operation; returns the path to hand on.
    fn check(&self, fd: &Resource<Descriptor>, op: PathOperation<'_>) -> FsResult<ResolvedPath> {
        let resolved = self.resolve_or_refuse(fd, &op)?;
        self.decide(op, &resolved.location, None)?;
        Ok(resolved)
    }

    /// Resolves both paths of `rename-at` / `link-at` and decides them as one write whose
    /// `target` is the source.
    fn check_pair(
        &self,
        operation: &'static str,
        from_fd: &Resource<Descriptor>,
        from: &str,
        to_fd: &Resource<Descriptor>,
        to: &str,
    ) -> FsResult<(ResolvedPath, ResolvedPath)> {
        let op = |path| PathOperation {
            operation,
            path,
            access: Access::Write,
            flags: Vec::new(),
        };
        let source = self.resolve_or_refuse(from_fd, &op(from))?;
        let destination = self.resolve_or_refuse(to_fd, &op(to))?;
        if source.location.mount != destination.location.mount {
            let reason = format!(
                "{operation} from {} to {} crosses mounts",
                source.location.guest_path(),
                destination.location.guest_path()
            );
            self.refuse(
                operation,
                destination.location.guest_path(),
                &destination.location.mount,
                Access::Write,
                reason,
            );
            return Err(ErrorCode::CrossDevice.into());
        }
        self.decide(op(to), &destination.location, Some(&source.location))?;
        Ok((source, destination))
    }

    fn path_op<'p>(operation: &'static str, path: &'p str, access: Access) -> PathOperation<'p> {
        PathOperation {
            operation,
            path,
            access,
            flags: Vec::new(),
        }
    }
}

impl preopens::Host for GuardedFilesystem<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let directories = preopens::Host::get_directories(&mut self.inner)?;
        for (fd, name) in &directories {
            self.paths.by_descriptor.insert(
                fd.rep(),
                GuestDir {
                    mount: Arc::from(name.as_str()),
                    segments: Vec::new(),
                },
            );
        }
        Ok(directories)
    }
}

impl fs_types::Host for GuardedFilesystem<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        fs_types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        fs_types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for GuardedFilesystem<'_> {
    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        self.inner.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.inner.sync_data(fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        self.inner.get_flags(fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorType> {
        self.inner.get_type(fd).await
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: types::Filesize) -> FsResult<()> {
        self.inner.set_size(fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        self.inner.set_times(fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        self.inner.read(fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        self.inner.write(fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        self.check(&fd, Self::path_op("read-directory", ".", Access::Read))?;
        self.inner.read_directory(fd).await
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.inner.sync(fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let resolved = self.check(
            &fd,
            Self::path_op("create-directory-at", &path, Access::Write),
        )?;
        self.inner.create_directory_at(fd, resolved.relative).await
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        self.inner.stat(fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        let resolved = self.check(&fd, Self::path_op("stat-at", &path, Access::Read))?;
        self.inner.stat_at(fd, path_flags, resolved.relative).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let resolved = self.check(&fd, Self::path_op("set-times-at", &path, Access::Write))?;
        self.inner
            .set_times_at(fd, path_flags, resolved.relative, atim, mtim)
            .await
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (source, destination) =
            self.check_pair("link-at", &fd, &old_path, &new_descriptor, &new_path)?;
        self.inner
            .link_at(
                fd,
                old_path_flags,
                source.relative,
                new_descriptor,
                destination.relative,
            )
            .await
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let op = PathOperation {
            operation: "open-at",
            path: &path,
            access: open_access(oflags, flags),
            flags: flag_names(oflags, flags),
        };
        let resolved = self.check(&fd, op)?;
        let opened = self
            .inner
            .open_at(fd, path_flags, resolved.relative, oflags, flags)
            .await?;
        self.paths
            .by_descriptor
            .insert(opened.rep(), resolved.location);
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.paths.by_descriptor.remove(&fd.rep());
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let resolved = self.check(&fd, Self::path_op("readlink-at", &path, Access::Read))?;
        self.inner.readlink_at(fd, resolved.relative).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let resolved = self.check(
            &fd,
            Self::path_op("remove-directory-at", &path, Access::Write),
        )?;
        self.inner.remove_directory_at(fd, resolved.relative).await
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (source, destination) =
            self.check_pair("rename-at", &fd, &old_path, &new_fd, &new_path)?;
        self.inner
            .rename_at(fd, source.relative, new_fd, destination.relative)
            .await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let op = Self::path_op("symlink-at", &dest_path, Access::Write);
        let link = self.resolve_or_refuse(&fd, &op)?;
        let target = match resolve_link_target(&link.location, &src_path) {
            Ok(target) => target,
            Err(refusal) => {
                let reason = format!(
                    "symlink {} -> {src_path:?}: {}",
                    link.location.guest_path(),
                    match refusal {
                        PathRefusal::Absolute => "a link may not point to an absolute path",
                        _ => "a link may not point outside its mount",
                    }
                );
                self.refuse(
                    "symlink-at",
                    link.location.guest_path(),
                    &link.location.mount,
                    Access::Write,
                    reason,
                );
                return Err(ErrorCode::NotPermitted.into());
            }
        };
        self.decide(op, &link.location, Some(&target))?;
        self.inner.symlink_at(fd, src_path, link.relative).await
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let resolved = self.check(&fd, Self::path_op("unlink-file-at", &path, Access::Write))?;
        self.inner.unlink_file_at(fd, resolved.relative).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        self.inner.read_via_stream(fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.inner.write_via_stream(fd, offset)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.inner.append_via_stream(fd)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        self.inner.is_same_object(a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        self.inner.metadata_hash(fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        let resolved = self.check(&fd, Self::path_op("metadata-hash-at", &path, Access::Read))?;
        self.inner
            .metadata_hash_at(fd, path_flags, resolved.relative)
            .await
    }
}

impl HostDirectoryEntryStream for GuardedFilesystem<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        self.inner.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(mount: &str, segments: &[&str]) -> GuestDir {
        GuestDir {
            mount: Arc::from(mount),
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn resolves_dot_segments_lexically() {
        let base = dir("/data", &["reports"]);
        let resolved = resolve(&base, "./2026/../q3.csv").unwrap();
        assert_eq!(resolved.location.guest_path(), "/data/reports/q3.csv");
        assert_eq!(resolved.relative, "q3.csv");
        assert_eq!(resolve(&base, ".").unwrap().relative, ".");
        assert_eq!(
            resolve(&base, "a/..").unwrap().location.guest_path(),
            "/data/reports"
        );
    }

    #[test]
    fn refuses_absolute_paths_and_climbing_out() {
        let base = dir("/data", &[]);
        assert_eq!(resolve(&base, "/etc/passwd"), Err(PathRefusal::Absolute));
        assert_eq!(resolve(&base, "../etc/passwd"), Err(PathRefusal::ClimbsOut));
        assert_eq!(resolve(&base, "a/../../etc"), Err(PathRefusal::ClimbsOut));
        // Climbing above a subdirectory is refused too: it is relative to that descriptor.
        assert_eq!(
            resolve(&dir("/data", &["a"]), ".."),
            Err(PathRefusal::ClimbsOut)
        );
    }

    #[test]
    fn link_targets_stay_inside_the_mount() {
        let link = dir("/data", &["out", "link"]);
        assert_eq!(
            resolve_link_target(&link, "../in/file")
                .unwrap()
                .guest_path(),
            "/data/in/file"
        );
        assert_eq!(
            resolve_link_target(&link, "/etc"),
            Err(PathRefusal::Absolute)
        );
        assert_eq!(
            resolve_link_target(&link, "../../etc"),
            Err(PathRefusal::ClimbsOut)
        );
    }

    #[test]
    fn open_access_counts_anything_that_changes_as_write() {
        assert_eq!(
            open_access(OpenFlags::empty(), DescriptorFlags::READ),
            Access::Read
        );
        assert_eq!(
            open_access(OpenFlags::CREATE, DescriptorFlags::READ),
            Access::Write
        );
        assert_eq!(
            open_access(OpenFlags::TRUNCATE, DescriptorFlags::READ),
            Access::Write
        );
        assert_eq!(
            open_access(OpenFlags::empty(), DescriptorFlags::WRITE),
            Access::Write
        );
        assert_eq!(
            open_access(OpenFlags::DIRECTORY, DescriptorFlags::MUTATE_DIRECTORY),
            Access::Write
        );
        assert_eq!(
            flag_names(
                OpenFlags::CREATE | OpenFlags::TRUNCATE,
                DescriptorFlags::WRITE
            ),
            ["create", "truncate", "write"]
        );
    }

    #[test]
    fn guest_paths_join_mount_and_segments() {
        assert_eq!(dir("/data", &[]).guest_path(), "/data");
        assert_eq!(dir("/data/", &["a", "b"]).guest_path(), "/data/a/b");
        assert_eq!(dir("/", &["a"]).guest_path(), "/a");
        assert_eq!(dir("/", &[]).guest_path(), "/");
    }
}
