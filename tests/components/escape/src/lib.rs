//! The `escape` test component: each export attempts one way out of the sandbox and
//! reports the outcome as text ("succeeded: …" / "refused: …") instead of trapping, so a
//! test sees exactly what the host allowed.

wit_bindgen::generate!({ path: "wit", world: "escape" });

use std::ffi::{CString, c_char, c_int};
use std::fmt::Display;
use std::io;
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, OpenFlags, PathFlags,
};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::{self, IpAddress};
use wasip2::sockets::network::ErrorCode as SocketErrorCode;

struct Component;

/// How many characters of a file a report quotes.
const QUOTE_CHARS: usize = 200;

/// The outcome of one attempt, rendered as its report line.
fn report<T: Display, E: Display>(outcome: Result<T, E>) -> String {
    match outcome {
        Ok(detail) => format!("succeeded: {detail}"),
        Err(error) => format!("refused: {error}"),
    }
}

/// Reads a file (quoting its start) or lists a directory, following symbolic links.
fn read_through(path: &str) -> io::Result<String> {
    if std::fs::metadata(path)?.is_dir() {
        let mut names = std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        return Ok(format!("listed {path}: {}", names.join(", ")));
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let quote: String = text.chars().take(QUOTE_CHARS).collect();
    Ok(format!("read {} bytes from {path}: {quote:?}", bytes.len()))
}

unsafe extern "C" {
    /// wasi-libc's `symlink(2)`: resolves `linkpath` against the preopens the same way
    /// `std::fs` does (std's own wrapper, `std::os::wasi::fs::symlink_path`, is unstable).
    fn symlink(target: *const c_char, linkpath: *const c_char) -> c_int;
}

/// Creates a symbolic link at `link` whose content is `target`.
fn create_symlink(target: &str, link: &str) -> io::Result<()> {
    let nul_error = |_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL");
    let target = CString::new(target).map_err(nul_error)?;
    let link = CString::new(link).map_err(nul_error)?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call.
    if unsafe { symlink(target.as_ptr(), link.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How many bytes `open-at` reads from a file.
const RAW_READ_BYTES: u64 = 4096;

/// Opens `path` relative to the preopen named `preopen` with the raw `wasi:filesystem`
/// call, then reads or lists it.
fn open_at_raw(preopen: &str, path: &str) -> Result<String, String> {
    let directories = get_directories();
    let (directory, _) = directories
        .iter()
        .find(|(_, name)| name == preopen)
        .ok_or_else(|| {
            let names: Vec<&str> = directories.iter().map(|(_, n)| n.as_str()).collect();
            format!("no preopen named {preopen:?} (preopens: {names:?})")
        })?;
    let opened = directory
        .open_at(
            PathFlags::SYMLINK_FOLLOW,
            path,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        )
        .map_err(|code| format!("open-at {path}: {}", code.name()))?;
    describe_descriptor(&opened, path).map_err(|code| format!("reading {path}: {}", code.name()))
}

/// Lists a directory descriptor or quotes the start of a file descriptor.
fn describe_descriptor(
    descriptor: &Descriptor,
    path: &str,
) -> Result<String, wasip2::filesystem::types::ErrorCode> {
    if descriptor.get_type()? == DescriptorType::Directory {
        let entries = descriptor.read_directory()?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read_directory_entry()? {
            names.push(entry.name);
        }
        names.sort();
        return Ok(format!("listed {path}: {}", names.join(", ")));
    }
    let (bytes, _) = descriptor.read(RAW_READ_BYTES, 0)?;
    let text = String::from_utf8_lossy(&bytes);
    let quote: String = text.chars().take(QUOTE_CHARS).collect();
    Ok(format!("read {} bytes from {path}: {quote:?}", bytes.len()))
}

/// Resolves `name` to all its addresses through `wasi:sockets/ip-name-lookup`.
fn lookup(name: &str) -> Result<Vec<String>, SocketErrorCode> {
    let network = instance_network();
    let stream = ip_name_lookup::resolve_addresses(&network, name)?;
    let mut addresses = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4((a, b, c, d)))) => addresses.push(format!("{a}.{b}.{c}.{d}")),
            Ok(Some(IpAddress::Ipv6(segments))) => {
                let (a, b, c, d, e, f, g, h) = segments;
                addresses.push(std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h).to_string());
            }
            Ok(None) => return Ok(addresses),
            Err(SocketErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(code) => return Err(code),
        }
    }
}

/// Writes a short text to `path` and reports the outcome.
fn write_text(path: &str) -> String {
    const TEXT: &str = "written by the gatehouse escape test component\n";
    report(std::fs::write(path, TEXT).map(|()| format!("wrote {} bytes to {path}", TEXT.len())))
}

impl Guest for Component {
    fn read_parent(path: String) -> String {
        report(read_through(&path))
    }

    fn read_absolute(path: String) -> String {
        report(read_through(&path))
    }

    fn open_at(preopen: String, path: String) -> String {
        report(open_at_raw(&preopen, &path))
    }

    fn symlink_out(link: String, target: String) -> String {
        report(
            create_symlink(&target, &link)
                .map_err(|e| format!("creating symlink {link} -> {target}: {e}"))
                .and_then(|()| {
                    read_through(&link).map_err(|e| format!("reading through {link}: {e}"))
                }),
        )
    }

    fn hardlink_out(src: String, dst: String) -> String {
        report(
            std::fs::hard_link(&src, &dst)
                .map_err(|e| format!("creating hard link {dst} -> {src}: {e}"))
                .and_then(|()| read_through(&dst).map_err(|e| format!("reading {dst}: {e}"))),
        )
    }

    fn write_readonly(path: String) -> String {
        write_text(&path)
    }

    fn make_symlink(target: String, link: String) -> String {
        report(create_symlink(&target, &link).map(|()| format!("linked {link} -> {target}")))
    }

    fn hard_link(src: String, dst: String) -> String {
        report(std::fs::hard_link(&src, &dst).map(|()| format!("linked {dst} to {src}")))
    }

    fn remove_file(path: String) -> String {
        report(std::fs::remove_file(&path).map(|()| format!("removed {path}")))
    }

    fn visit(urls: Vec<String>, write_path: String) -> Vec<String> {
        let mut lines: Vec<String> = urls.iter().map(|url| Self::http_get(url.clone())).collect();
        lines.push(write_text(&write_path));
        lines
    }

    fn http_get(url: String) -> String {
        report(http_get::get(&url).map(|response| {
            format!(
                "status {}, {} body bytes",
                response.status,
                response.body.len()
            )
        }))
    }

    fn tcp_connect(address: String) -> String {
        report(std::net::TcpStream::connect(&address).and_then(|stream| {
            let peer = stream.peer_addr()?;
            Ok(format!("connected to {peer}"))
        }))
    }

    fn read_env(name: String) -> Option<String> {
        std::env::var(&name).ok()
    }

    fn resolve(name: String) -> String {
        report(
            lookup(&name)
                .map(|addresses| format!("{name} resolved to {}", addresses.join(", ")))
                .map_err(|code| code.name().to_string()),
        )
    }
}

export!(Component);
