//! Fuzz target `store_model`: sequences of store operations (create with or without a session
//! limit, `is_active` with touch, `rotate`, a create or rotate repeated as a retry, `revoke`,
//! `revoke_all`, `revoke_authenticated_before`, `list` of at most a few, `sweep`, time moving
//! on by microseconds or seconds) on a few users and session ids, run on `MemoryStore` and
//! on the reference model of `tests/model/mod.rs`; every answer, every user's live sessions
//! and the number of sessions held must agree after each step.
//!
//! Run it from the repository root (a stable toolchain will do: see `auth_request.rs`):
//!
//! ```text
//! cargo install cargo-fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz run store_model -- -max_total_time=300
//! cargo fuzz run --sanitizer none store_model -- -max_total_time=300
//! ```
//!
//! Without a corpus folder given, inputs found are added to `fuzz/corpus/store_model/`,
//! which git ignores but for the `seed-*` files.
//!
//! Each input is read as operations of up to nine bytes: a tag, then the fields the
//! operation takes, each from one byte (missing bytes read as zero).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

use model::{Harness, Op};

/// Longer sequences add little but time.
const MAX_OPS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut ops = Vec::new();
    while let Some(tag) = bytes.next()
        && ops.len() < MAX_OPS
    {
        let mut field = || bytes.next().unwrap_or(0);
        ops.push(match tag % 10 {
            0 => Op::Create {
                user: field(),
                id: field(),
                backdate: u64::from(field() % 4),
                // Mostly authenticated at creation, else a few microseconds or seconds before.
                auth_lag: match field() {
                    0..=127 => 0,
                    lag @ 128..=223 => u64::from(lag % 8),
                    lag => u64::from(lag % 4) * 1_000_000,
                },
                ttl: u64::from(field() % 32),
                limit: {
                    let limit = field();
                    (limit & 0x80 == 0).then_some((u32::from(limit % 4), limit & 0x40 != 0))
                },
                digest: field() % 3,
                metadata: field() & 1 == 1,
            },
            1 => Op::IsActive {
                user: field(),
                id: field(),
                touch_interval: u64::from(field() % 6),
                lag: u64::from(field() % 4),
            },
            2 => Op::Rotate {
                user: field(),
                id: field(),
                generation: u64::from(field() % 3),
                digest: field() % 3,
                next_digest: field() % 3,
                ttl: u64::from(field() % 32),
                grace: u64::from(field() % 5),
                lag: u64::from(field() % 4),
            },
            3 => Op::Revoke {
                user: field(),
                id: field(),
            },
            4 => Op::RevokeAll { user: field() },
            5 => Op::RevokeAuthenticatedBefore {
                user: field(),
                // Microseconds around now, or whole seconds.
                offset: match field() {
                    near @ 0..=127 => i64::from(near % 11) - 5,
                    far => (i64::from(far % 11) - 5) * 1_000_000,
                },
                keep: u64::from(field() % 64),
            },
            6 => Op::List {
                user: field(),
                lag: u64::from(field() % 4),
                max: match field() % 5 {
                    4 => usize::MAX,
                    max => usize::from(max),
                },
            },
            7 => Op::Sweep,
            8 => Op::Repeat,
            _ => Op::Advance {
                micros: match field() {
                    // Now and then, far enough for every session to expire.
                    big @ 240.. => u64::from(big - 239) * 100_000_000,
                    // Often not a whole second: logins in the same second.
                    small @ 128.. => u64::from(small % 16) * 1_000_000,
                    tiny => u64::from(tiny % 8),
                },
            },
        });
    }
    if let Err(difference) = Harness::new().run(&ops) {
        panic!("the memory store differs from the model: {difference}");
    }
});
