//! Our `wasi:filesystem`: wasmtime-wasi's implementation, wrapped so that every operation that
//! names a path is first resolved on the host, checked against its mount and then decided by
//! the policy (`fs`) on what it will really touch.
//!
//! - **A guest path for every descriptor.** We remember where each descriptor the tool holds
//!   lies (the preopen's guest path plus what was opened under it), so a path is decided as an
//!   absolute guest path (`/data/reports/q3.csv`).
//! - **Resolved as the kernel resolves it.** [`walk`] expands every symbolic link itself, from
//!   the link's real directory, and the policy decides on the result (`input.fs.path`; the
//!   path as the tool wrote it is `input.fs.requested` when links made them differ). The
//!   operation then runs on the directory handle the walk opened (without following links)
//!   and the final name alone, with links in the final component not followed: a link swapped
//!   in after the decision cannot redirect it.
//! - **Refusals regardless of policy.** Absolute paths, `..` above the directory a path is
//!   relative to, links whose contents are absolute or climb out of their mount, chains of more
//!   than 40 links, and hard links or renames across mounts are refused before anything
//!   touches the disk, and recorded as denials.
//! - **A decision per operation.** open (with its flags and access), stat, set-times,
//!   readlink, read-directory, create-directory, remove-directory, unlink, rename, link,
//!   symlink and metadata-hash are each decided by `gatehouse.fs`. `link-at` and `rename-at`
//!   carry their source as `target`; `symlink-at` carries where the new link will point,
//!   resolved from the link's real directory.
//!
//! Reads and writes on an open descriptor are bounded by the flags the open was allowed with
//! (wasmtime-wasi refuses a write on a descriptor opened for reading) and by the mount's
//! read-only flag. A hard link that already exists shares its inode with its other names: the
//! policy decides on the name used, so mount only what a tool may see.

mod mount;
mod walk;

pub use mount::MountConfig;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, DescriptorFlags, ErrorCode, HostDescriptor, HostDirectoryEntryStream, OpenFlags,
    PathFlags,
};
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types as fs_types};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

use super::guard::{Access, FsAccess, HostGuard, HostRequest};
use walk::{GuestDir, PathRefusal, Start, WalkError, Walked};

/// Where each open descriptor of one call lies, and each mount's root directory.
#[derive(Debug, Default)]
pub struct DescriptorPaths {
    by_descriptor: HashMap<u32, GuestDir>,
    /// The root of each mount by guest path, kept apart from the guest's descriptors (a tool
    /// may drop its preopen): a link's `..` can lead back up to it.
    roots: HashMap<Arc<str>, Arc<File>>,
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
    /// Whether a link in the final component is followed (`symlink-follow`).
    follow: bool,
}

impl<'p> PathOperation<'p> {
    /// An operation on the final component itself (a link is not followed).
    fn on(operation: &'static str, path: &'p str, access: Access) -> Self {
        PathOperation {
            operation,
            path,
            access,
            flags: Vec::new(),
            follow: false,
        }
    }

    /// Follows a link in the final component when the tool's flags ask for it.
    fn following(mut self, path_flags: PathFlags) -> Self {
        self.follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        self
    }
}

/// A path resolved and checked against its mount, ready to be decided.
struct Checked {
    walked: Walked,
    /// The path as the tool wrote it (lexically), shown to the policy when links changed it.
    requested: GuestDir,
}

impl Checked {
    fn requested_if_different(&self) -> Option<String> {
        (self.requested != self.walked.location).then(|| self.requested.guest_path())
    }
}

impl GuardedFilesystem<'_> {
    fn base(&self, fd: &Resource<Descriptor>) -> Option<&GuestDir> {
        self.paths.by_descriptor.get(&fd.rep())
    }

    /// Records a refusal made by the host itself (no policy could allow it).
    fn refuse(&self, operation: &'static str, location: &GuestDir, access: Access, reason: String) {
        self.guard.refuse(
            HostRequest::Fs(FsAccess {
                operation,
                path: location.guest_path(),
                requested: None,
                mount: location.mount.to_string(),
                access,
                target: None,
                flags: Vec::new(),
            }),
            reason,
        );
    }

    /// The directory handle behind a descriptor, with the handle of its mount's root.
    fn handles(
        &self,
        fd: &Resource<Descriptor>,
        base: &GuestDir,
    ) -> FsResult<(Arc<File>, Arc<File>)> {
        let Descriptor::Dir(dir) = self.inner.table.get(fd)? else {
            return Err(ErrorCode::NotDirectory.into());
        };
        let root = self
            .paths
            .roots
            .get(&base.mount)
            .cloned()
            .ok_or(ErrorCode::NotPermitted)?;
        Ok((dir.dir.clone(), root))
    }

    /// Resolves the tool's path against `fd` as the kernel would, refusing (and recording)
    /// whatever leaves the mount.
    fn resolve(&self, fd: &Resource<Descriptor>, op: &PathOperation<'_>) -> FsResult<Checked> {
        let Some(base) = self.base(fd) else {
            let unknown = GuestDir::root(Arc::from(""));
            let reason = PathRefusal::UnknownDescriptor.reason(op.path);
            self.refuse(op.operation, &unknown, op.access, reason);
            return Err(ErrorCode::NotPermitted.into());
        };
        let requested = match walk::lexical(base, op.path) {
            Ok(requested) => requested,
            Err(refusal) => {
                let mut shown = base.clone();
                shown.segments.push(op.path.to_owned());
                self.refuse(op.operation, &shown, op.access, refusal.reason(op.path));
                return Err(ErrorCode::NotPermitted.into());
            }
        };
        let (dir, root) = self.handles(fd, base)?;
        let start = Start {
            root: root.as_fd(),
            dir: dir.as_fd(),
            location: base,
        };
        match walk::walk(&start, op.path, op.follow) {
            Ok(walked) => Ok(Checked { walked, requested }),
            Err(WalkError::Refused(refusal)) => {
                self.refuse(op.operation, &requested, op.access, refusal.reason(op.path));
                Err(ErrorCode::NotPermitted.into())
            }
            Err(WalkError::Io(error)) => Err(error.into()),
        }
    }

    /// Asks the policy about one operation.
    fn decide(
        &self,
        op: PathOperation<'_>,
        location: &GuestDir,
        requested: Option<String>,
        target: Option<&GuestDir>,
    ) -> FsResult<()> {
        let verdict = self.guard.decide(HostRequest::Fs(FsAccess {
            operation: op.operation,
            path: location.guest_path(),
            requested,
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

    /// Resolves and decides a single-path operation.
    fn check(&self, fd: &Resource<Descriptor>, op: PathOperation<'_>) -> FsResult<Walked> {
        let checked = self.resolve(fd, &op)?;
        let requested = checked.requested_if_different();
        self.decide(op, &checked.walked.location, requested, None)?;
        Ok(checked.walked)
    }

    /// Decides an operation on the descriptor's own directory (no path).
    fn check_descriptor(&self, fd: &Resource<Descriptor>, operation: &'static str) -> FsResult<()> {
        let Some(base) = self.base(fd).cloned() else {
            let unknown = GuestDir::root(Arc::from(""));
            let reason = PathRefusal::UnknownDescriptor.reason(".");
            self.refuse(operation, &unknown, Access::Read, reason);
            return Err(ErrorCode::NotPermitted.into());
        };
        self.decide(
            PathOperation::on(operation, ".", Access::Read),
            &base,
            None,
            None,
        )
    }

    /// Resolves both paths of `rename-at` / `link-at` and decides them as one write whose
    /// `target` is the source.
    fn check_pair(
        &self,
        operation: &'static str,
        (from_fd, from, from_flags): (&Resource<Descriptor>, &str, PathFlags),
        (to_fd, to): (&Resource<Descriptor>, &str),
    ) -> FsResult<(Walked, Walked)> {
        let source = self.resolve(
            from_fd,
            &PathOperation::on(operation, from, Access::Write).following(from_flags),
        )?;
        let op = PathOperation::on(operation, to, Access::Write);
        let destination = self.resolve(to_fd, &op)?;
        let (source, destination_location) = (source.walked, &destination.walked.location);
        if source.location.mount != destination_location.mount {
            let reason = format!(
                "{operation} from {} to {} crosses mounts",
                source.location.guest_path(),
                destination_location.guest_path()
            );
            self.refuse(operation, destination_location, Access::Write, reason);
            return Err(ErrorCode::CrossDevice.into());
        }
        let requested = destination.requested_if_different();
        self.decide(op, destination_location, requested, Some(&source.location))?;
        Ok((source, destination.walked))
    }

    /// A short-lived descriptor for the directory a walk ended in, with the permissions of
    /// the descriptor the path was relative to: the operation is handed this and the final
    /// name alone. Release it with [`Self::release`].
    fn enter(
        &mut self,
        base: &Resource<Descriptor>,
        parent: Result<OwnedFd, ErrorCode>,
    ) -> FsResult<Resource<Descriptor>> {
        let parent = parent?;
        let Descriptor::Dir(base) = self.inner.table.get(base)? else {
            return Err(ErrorCode::NotDirectory.into());
        };
        let dir = Dir::new(File::from(parent), base.perms, base.open_mode, false);
        Ok(self.inner.table.push(Descriptor::Dir(dir))?)
    }

    /// Where a new link at `link` will point: its contents resolved from the link's real
    /// directory as the kernel will resolve them, following the links already there.
    fn link_target(&self, link: &Walked, contents: &str) -> Result<GuestDir, WalkError> {
        if contents.starts_with('/') {
            return Err(WalkError::Refused(PathRefusal::Absolute));
        }
        let directory = link.location.parent();
        let root = self.paths.roots.get(&directory.mount);
        let (Ok(parent), Some(root)) = (&link.parent, root) else {
            // No directory to create the link in (the creation will fail): the contents as
            // written, never above the mount.
            let written = format!("{}/{contents}", directory.segments.join("/"));
            return walk::lexical(&GuestDir::root(directory.mount.clone()), &written)
                .map_err(WalkError::Refused);
        };
        let start = Start {
            root: root.as_fd(),
            dir: parent.as_fd(),
            location: &directory,
        };
        walk::walk(&start, contents, true).map(|walked| walked.location)
    }

    /// [`Self::enter`] for both directories of a two-path operation.
    fn enter_pair(
        &mut self,
        (from_base, from): (&Resource<Descriptor>, Result<OwnedFd, ErrorCode>),
        (to_base, to): (&Resource<Descriptor>, Result<OwnedFd, ErrorCode>),
    ) -> FsResult<(Resource<Descriptor>, Resource<Descriptor>)> {
        let from = self.enter(from_base, from)?;
        match self.enter(to_base, to) {
            Ok(to) => Ok((from, to)),
            Err(error) => {
                self.release(from.rep());
                Err(error)
            }
        }
    }

    fn release_pair(&mut self, (from, to): (u32, u32)) {
        self.release(from);
        self.release(to);
    }

    fn release(&mut self, rep: u32) {
        // Only our own descriptor: the guest never saw it.
        let _ = self
            .inner
            .table
            .delete(Resource::<Descriptor>::new_own(rep));
    }
}

/// Runs one wasmtime-wasi operation on the directory a walk ended in (see
/// [`GuardedFilesystem::enter`]), then drops that directory's descriptor.
macro_rules! in_parent {
    ($fs:ident, $base:expr, $walked:expr, |$dir:ident, $name:ident| $call:expr) => {{
        let walked: Walked = $walked;
        let $dir = $fs.enter(&$base, walked.parent)?;
        let rep = $dir.rep();
        let $name = walked.name;
        let result = $call.await;
        $fs.release(rep);
        result
    }};
}

impl preopens::Host for GuardedFilesystem<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let directories = preopens::Host::get_directories(&mut self.inner)?;
        for (fd, name) in &directories {
            let mount: Arc<str> = Arc::from(name.as_str());
            if let Descriptor::Dir(dir) = self.inner.table.get(fd)? {
                self.paths.roots.insert(mount.clone(), dir.dir.clone());
            }
            self.paths
                .by_descriptor
                .insert(fd.rep(), GuestDir::root(mount));
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
        self.check_descriptor(&fd, "read-directory")?;
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
        let walked = self.check(
            &fd,
            PathOperation::on("create-directory-at", &path, Access::Write),
        )?;
        in_parent!(self, fd, walked, |dir, name| self
            .inner
            .create_directory_at(dir, name))
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
        let op = PathOperation::on("stat-at", &path, Access::Read).following(path_flags);
        let walked = self.check(&fd, op)?;
        in_parent!(self, fd, walked, |dir, name| self.inner.stat_at(
            dir,
            PathFlags::empty(),
            name
        ))
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let op = PathOperation::on("set-times-at", &path, Access::Write).following(path_flags);
        let walked = self.check(&fd, op)?;
        in_parent!(self, fd, walked, |dir, name| self.inner.set_times_at(
            dir,
            PathFlags::empty(),
            name,
            atim,
            mtim
        ))
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (source, destination) = self.check_pair(
            "link-at",
            (&fd, &old_path, old_path_flags),
            (&new_descriptor, &new_path),
        )?;
        let (from, to) =
            self.enter_pair((&fd, source.parent), (&new_descriptor, destination.parent))?;
        let reps = (from.rep(), to.rep());
        let result = self
            .inner
            .link_at(from, PathFlags::empty(), source.name, to, destination.name)
            .await;
        self.release_pair(reps);
        result
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
            follow: false,
        }
        .following(path_flags);
        let walked = self.check(&fd, op)?;
        let location = walked.location.clone();
        let opened = in_parent!(self, fd, walked, |dir, name| self.inner.open_at(
            dir,
            PathFlags::empty(),
            name,
            oflags,
            flags
        ))?;
        self.paths.by_descriptor.insert(opened.rep(), location);
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.paths.by_descriptor.remove(&fd.rep());
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let walked = self.check(&fd, PathOperation::on("readlink-at", &path, Access::Read))?;
        in_parent!(self, fd, walked, |dir, name| self
            .inner
            .readlink_at(dir, name))
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let walked = self.check(
            &fd,
            PathOperation::on("remove-directory-at", &path, Access::Write),
        )?;
        in_parent!(self, fd, walked, |dir, name| self
            .inner
            .remove_directory_at(dir, name))
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (source, destination) = self.check_pair(
            "rename-at",
            (&fd, &old_path, PathFlags::empty()),
            (&new_fd, &new_path),
        )?;
        let (from, to) = self.enter_pair((&fd, source.parent), (&new_fd, destination.parent))?;
        let reps = (from.rep(), to.rep());
        let result = self
            .inner
            .rename_at(from, source.name, to, destination.name)
            .await;
        self.release_pair(reps);
        result
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let op = PathOperation::on("symlink-at", &dest_path, Access::Write);
        let link = self.resolve(&fd, &op)?;
        let target = match self.link_target(&link.walked, &src_path) {
            Ok(target) => target,
            Err(WalkError::Io(error)) => return Err(error.into()),
            Err(WalkError::Refused(refusal)) => {
                let reason = format!(
                    "symlink {} -> {src_path:?}: {}",
                    link.walked.location.guest_path(),
                    match refusal {
                        PathRefusal::Absolute | PathRefusal::LinkAbsolute { .. } =>
                            "a link may not point to an absolute path",
                        _ => "a link may not point outside its mount",
                    }
                );
                self.refuse("symlink-at", &link.walked.location, Access::Write, reason);
                return Err(ErrorCode::NotPermitted.into());
            }
        };
        let requested = link.requested_if_different();
        self.decide(op, &link.walked.location, requested, Some(&target))?;
        in_parent!(self, fd, link.walked, |dir, name| self
            .inner
            .symlink_at(dir, src_path, name))
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let walked = self.check(
            &fd,
            PathOperation::on("unlink-file-at", &path, Access::Write),
        )?;
        in_parent!(self, fd, walked, |dir, name| self
            .inner
            .unlink_file_at(dir, name))
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
        let op = PathOperation::on("metadata-hash-at", &path, Access::Read).following(path_flags);
        let walked = self.check(&fd, op)?;
        in_parent!(self, fd, walked, |dir, name| self.inner.metadata_hash_at(
            dir,
            PathFlags::empty(),
            name
        ))
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
}
