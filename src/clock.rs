//! Time as the crate sees it.
//!
//! Tokens speak whole seconds since the Unix epoch (a JWT `NumericDate`); what orders
//! sessions (creation, authentication, the "not before" mark of
//! [`revoke_issued_before`](crate::Sessions::revoke_issued_before)) keeps microseconds, so
//! two logins in one second are still told apart. Every decision reads one [`Clock`], so
//! tests can move time with a [`ManualClock`] instead of sleeping.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use tower_jwt_auth::{Clock, ManualClock};
//!
//! let manual = ManualClock::new(1_700_000_000);
//! let clock = Clock::from(manual.clone());
//! manual.advance(Duration::from_millis(90_500));
//! assert_eq!(clock.now(), 1_700_000_090);
//! assert_eq!(clock.time(), UNIX_EPOCH + Duration::from_millis(1_700_000_090_500));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The source of "now" for tokens and sessions: the system clock, or a [`ManualClock`].
///
/// See the [module docs](crate::clock).
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<ManualClock>,
}

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Self { manual: None }
    }

    /// Whole seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match &self.manual {
            Some(manual) => manual.now(),
            None => unix_seconds(SystemTime::now()),
        }
    }

    /// Now, to the microsecond.
    pub fn time(&self) -> SystemTime {
        match &self.manual {
            Some(manual) => manual.time(),
            None => SystemTime::now(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            Some(manual) => manual.fmt(f),
            None => f.write_str("Clock::system"),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Self {
            manual: Some(manual),
        }
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// See the [module docs](crate::clock).
#[derive(Clone)]
pub struct ManualClock {
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `unix_seconds`.
    pub fn new(unix_seconds: u64) -> Self {
        Self {
            micros: Arc::new(AtomicU64::new(unix_seconds.saturating_mul(1_000_000))),
        }
    }

    /// The whole seconds it stands at.
    pub fn now(&self) -> u64 {
        self.micros.load(Ordering::SeqCst) / 1_000_000
    }

    /// The time it stands at, to the microsecond.
    pub fn time(&self) -> SystemTime {
        from_unix_micros(self.micros.load(Ordering::SeqCst))
    }

    /// Moves the clock forward (to the microsecond). It stops at the latest time it can
    /// stand at (`u64::MAX` microseconds after the Unix epoch) rather than wrap round to
    /// the past.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        // The closure always answers `Some`, so the update cannot fail.
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |micros| {
                Some(micros.saturating_add(by))
            });
    }

    /// Sets the clock to `unix_seconds`.
    pub fn set(&self, unix_seconds: u64) {
        self.set_time(from_unix_seconds(unix_seconds));
    }

    /// Sets the clock to `time` (to the microsecond).
    pub fn set_time(&self, time: SystemTime) {
        self.micros.store(unix_micros(time), Ordering::SeqCst);
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock")
            .field(&self.time().duration_since(UNIX_EPOCH).unwrap_or_default())
            .finish()
    }
}

/// Whole seconds since the Unix epoch (0 before it), as tokens and stores count expiry.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The time `unix_seconds` after the Unix epoch.
///
/// Never panics: a time later than the platform's `SystemTime` can hold (on Linux, about
/// 292 billion years from now) saturates at the latest one it holds.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tower_jwt_auth::clock::{from_unix_seconds, unix_seconds};
///
/// assert_eq!(from_unix_seconds(90), UNIX_EPOCH + Duration::from_secs(90));
/// let latest = from_unix_seconds(u64::MAX); // no panic
/// assert!(latest > from_unix_seconds(1 << 40));
/// assert_eq!(from_unix_seconds(u64::MAX - 1), latest);
/// ```
pub fn from_unix_seconds(unix_seconds: u64) -> SystemTime {
    after_epoch(Duration::from_secs(unix_seconds))
}

/// Microseconds since the Unix epoch (0 before it), as stores keep what orders sessions.
pub fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
    })
}

/// The time `unix_micros` microseconds after the Unix epoch; like [`from_unix_seconds`],
/// it saturates at the latest time the platform holds instead of panicking.
pub fn from_unix_micros(unix_micros: u64) -> SystemTime {
    after_epoch(Duration::from_micros(unix_micros))
}

/// `UNIX_EPOCH + elapsed`, or the latest time `SystemTime` holds when that is further: found
/// by bisection over whole seconds, as the bound differs between platforms and is not
/// exposed. Only times past it pay for the search.
fn after_epoch(elapsed: Duration) -> SystemTime {
    if let Some(time) = UNIX_EPOCH.checked_add(elapsed) {
        return time;
    }
    // Invariant: `low` seconds fit, `high` do not.
    let (mut low, mut high) = (0, elapsed.as_secs());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if UNIX_EPOCH
            .checked_add(Duration::from_secs(middle))
            .is_some()
        {
            low = middle;
        } else {
            high = middle;
        }
    }
    UNIX_EPOCH + Duration::from_secs(low)
}

/// `time` as an RFC 3339 UTC timestamp to the second, `YYYY-MM-DDTHH:MM:SSZ`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(tower_jwt_auth::clock::rfc3339(time), "2023-11-14T22:13:20Z");
/// ```
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let at = |seconds| rfc3339(from_unix_seconds(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::system().now() > 1_577_836_800);
        assert!(unix_micros(Clock::system().time()) > 1_577_836_800_000_000);
    }

    #[test]
    fn clones_of_a_manual_clock_share_time() {
        let manual = ManualClock::new(10);
        let clock = Clock::from(manual.clone());
        manual.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), 15);
        manual.set(3);
        assert_eq!(clock.now(), 3);
        manual.advance(Duration::from_micros(1_500_001));
        assert_eq!(clock.now(), 4);
        assert_eq!(unix_micros(clock.time()), 4_500_001);
    }

    #[test]
    fn huge_times_saturate_instead_of_panicking() {
        let latest = from_unix_seconds(u64::MAX);
        assert!(latest > from_unix_seconds(1 << 40));
        // Saturated: nothing later exists, and every huge value lands on it.
        assert!(latest.checked_add(Duration::from_secs(1)).is_none());
        assert_eq!(from_unix_seconds(u64::MAX / 2), latest);
        assert_eq!(
            unix_seconds(latest),
            unix_seconds(from_unix_seconds(u64::MAX - 7))
        );
        // Microseconds all fit on 64-bit Unix, and still convert exactly.
        assert_eq!(unix_micros(from_unix_micros(u64::MAX)), u64::MAX);
        // Where they would not, they saturate too.
        assert_eq!(after_epoch(Duration::MAX), latest);
    }

    #[test]
    fn a_manual_clock_saturates_instead_of_wrapping() {
        let manual = ManualClock::new(u64::MAX / 1_000_000 - 1);
        let clock = Clock::from(manual.clone());
        manual.advance(Duration::from_secs(10));
        assert_eq!(clock.now(), u64::MAX / 1_000_000);
        manual.advance(Duration::MAX);
        assert_eq!(unix_micros(clock.time()), u64::MAX);
        manual.advance(Duration::from_micros(1));
        assert_eq!(unix_micros(clock.time()), u64::MAX, "still at the end");
        assert!(clock.now() > 1_000_000_000, "never wrapped to the past");
        // Setting it far past what microseconds hold saturates as well.
        manual.set(u64::MAX);
        assert_eq!(unix_micros(clock.time()), u64::MAX);
    }

    #[test]
    fn conversions_round_trip() {
        let time = from_unix_micros(1_700_000_000_123_456);
        assert_eq!(unix_micros(time), 1_700_000_000_123_456);
        assert_eq!(unix_seconds(time), 1_700_000_000);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
