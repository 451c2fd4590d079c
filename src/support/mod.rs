//! Plumbing that several layers share and none owns: trusting files on disk, masking
//! credentials in URLs, watching files, logging, progress of long operations, the allocator. Nothing here knows about
//! tools, policies or the audit log.

#[cfg(feature = "full")]
pub(crate) mod allocator;
pub mod fs_trust;
#[cfg(feature = "full")]
pub mod logging;
pub mod progress;
#[cfg(feature = "full")]
pub mod tls;
pub mod userinfo;
#[cfg(feature = "full")]
pub mod watch;
