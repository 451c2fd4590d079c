//! The `gatehouse` binary: everything lives in the library; this only hands over to the CLI.

/// See `gatehouse::Allocator` for why the gateway does not use the system allocator.
#[global_allocator]
static ALLOCATOR: gatehouse::Allocator = gatehouse::Allocator;

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
