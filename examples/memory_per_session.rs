//! Memory per live session in the memory store: the growth of this process's resident
//! memory while 1,000,000 sessions are created (one per user, a browser's user agent and an
//! address each), divided by their number. Linux only (`/proc/self/statm`).
//!
//! `cargo run --release --example memory_per_session [sessions]`

use std::time::{Duration, SystemTime};

use tower_jwt_auth::SessionId;
use tower_jwt_auth::store::{MemoryStore, Session, SessionStore};

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                          Chrome/131.0.0.0 Safari/537.36";

/// Resident memory in bytes.
fn resident() -> Result<u64, Box<dyn std::error::Error>> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("no resident field in /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u64 = match std::env::args().nth(1) {
        Some(count) => count.parse()?,
        None => 1_000_000,
    };
    let store = MemoryStore::new();
    let now = SystemTime::now();
    let before = resident()?;
    for n in 0..count {
        let mut id = [0; 16];
        id[..8].copy_from_slice(&n.to_le_bytes());
        id[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        let mut session = Session::new(
            SessionId::from_bytes(id),
            format!("user{n}@example.com"),
            now,
            now + Duration::from_secs(3_600),
        );
        session.user_agent = Some(USER_AGENT.to_owned());
        session.address = Some(std::net::Ipv4Addr::from(n as u32).into());
        store.create(&session, None).await?;
    }
    let after = resident()?;
    println!(
        "{count} sessions: resident memory grew by {} bytes = {} bytes per session",
        after - before,
        (after - before) / count.max(1)
    );
    Ok(())
}
