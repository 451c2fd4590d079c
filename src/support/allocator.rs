//! The gateway's global allocator: mimalloc instead of the system's.
//!
//! Why: under load the audit path allocates and frees many small JSON values on the tokio workers
//! while the writer thread frees the batches they sent it. With glibc's malloc, `perf` put 44% of
//! the appending tasks' CPU and 13% of the writer's in `_int_free`, `malloc_consolidate` and
//! friends (BENCHMARKS.md#allocator). mimalloc's per-thread heaps make those calls cheap.
//!
//! Only binaries install it (`#[global_allocator] static ALLOCATOR: gatehouse::Allocator =
//! gatehouse::Allocator;`): the `gatehouse` binary and the benches, so the figures are those of
//! the binary that ships. The library never does, so tests and fuzz targets keep the allocator
//! their harness expects (the sanitizers intercept the system one).

pub use mimalloc::MiMalloc as Allocator;
