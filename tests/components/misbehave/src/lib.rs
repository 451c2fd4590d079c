//! The `misbehave` test component: each export misbehaves in one specific way on request.

wit_bindgen::generate!({ path: "wit", world: "misbehave" });

use std::hint::black_box;
use std::time::{Duration, Instant};

struct Component;

const MIB: usize = 1024 * 1024;

/// One level of non-tail recursion; the array keeps a frame on the stack at every level.
#[inline(never)]
fn recurse_level(depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    let frame = black_box([depth as u8; 256]);
    let below = recurse_level(black_box(depth - 1));
    black_box(frame)[0].wrapping_sub(depth as u8) as u32 + below + 1
}

/// Milliseconds since `start`, saturated to `u32`.
fn elapsed_ms(start: Instant) -> u32 {
    u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX)
}

impl Guest for Component {
    fn trap() {
        panic!("misbehave: deliberate trap");
    }

    fn spin() {
        let mut counter = 0u64;
        loop {
            counter = black_box(counter.wrapping_add(1));
        }
    }

    fn allocate(megabytes: u32) -> u32 {
        let mut blocks = Vec::new();
        for _ in 0..megabytes {
            // Filled with a non-zero byte so every page is written, not just reserved.
            blocks.push(black_box(vec![1u8; MIB]));
        }
        black_box(&blocks);
        megabytes
    }

    fn recurse(depth: u32) -> u32 {
        recurse_level(depth)
    }

    fn huge_result(megabytes: u32) -> String {
        let bytes = (megabytes as usize)
            .checked_mul(MIB)
            .unwrap_or_else(|| panic!("misbehave: {megabytes} MiB do not fit the address space"));
        "x".repeat(bytes)
    }

    fn sleep_ms(ms: u32) -> u32 {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(u64::from(ms)));
        elapsed_ms(start)
    }

    fn busy_ms(ms: u32) -> u32 {
        let start = Instant::now();
        let limit = Duration::from_millis(u64::from(ms));
        while start.elapsed() < limit {
            std::hint::spin_loop();
        }
        elapsed_ms(start)
    }

    fn ok() -> String {
        "ok".to_string()
    }

    fn print(stdout: String, stderr: String) {
        use std::io::Write;
        // Errors writing the host's captured streams have nowhere to go.
        let mut out = std::io::stdout();
        let _ = out.write_all(stdout.as_bytes()).and_then(|()| out.flush());
        let _ = std::io::stderr().write_all(stderr.as_bytes());
    }
}

export!(Component);
