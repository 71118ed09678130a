//! Fuzz target `store_model`: sequences of store operations (create with or without a session
//! limit, `is_active` with touch, `rotate`, `revoke`, `revoke_all`, `revoke_created_before`,
//! `list`, `sweep`, time moving on) on a few users and session ids, run on `MemoryStore` and
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
        ops.push(match tag % 9 {
            0 => Op::Create {
                user: field(),
                id: field(),
                backdate: u64::from(field() % 4),
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
            5 => Op::RevokeCreatedBefore {
                user: field(),
                offset: i64::from(field() % 11) - 5,
            },
            6 => Op::List {
                user: field(),
                lag: u64::from(field() % 4),
            },
            7 => Op::Sweep,
            _ => Op::Advance {
                seconds: match field() {
                    // Now and then, far enough for every session to expire.
                    big @ 240.. => u64::from(big - 239) * 100,
                    small => u64::from(small % 16),
                },
            },
        });
    }
    if let Err(difference) = Harness::new().run(&ops) {
        panic!("the memory store differs from the model: {difference}");
    }
});
