//! Time, injectable and typed: tokens, sessions and revocation expiry all read the clock through
//! this, so tests can move time forward instead of sleeping.
//!
//! A moment is a [`UnixSecs`] (a token's `iat` / `exp`, a revocation entry's expiry) or a
//! [`UnixMillis`] (the clock, a session's start, a spend, a counter's end), never a bare
//! number, so seconds and milliseconds cannot be mixed; a span of time is a `Duration`.

use std::ops::Add;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A moment type counted in whole `$unit`s since the unix epoch: a span added to it and the span
/// between two of them are counted in that unit too (a fraction of one is dropped). Both
/// saturate instead of overflowing.
macro_rules! moment {
    ($(#[$doc:meta])* $name:ident, $unit:literal, $as_units:ident, $from_units:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl $name {
            #[doc = concat!("How long after `earlier` this is, in whole ", $unit, "; zero if it is not after it.")]
            pub fn saturating_since(self, earlier: $name) -> Duration {
                let units = u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0);
                Duration::$from_units(units)
            }
        }

        impl Add<Duration> for $name {
            type Output = $name;

            fn add(self, span: Duration) -> $name {
                let units = i64::try_from(span.$as_units()).unwrap_or(i64::MAX);
                $name(self.0.saturating_add(units))
            }
        }
    };
}

moment!(
    /// Whole seconds since the unix epoch: the resolution of a token's `iat` and `exp`, and of
    /// the expiry of a revocation entry.
    UnixSecs,
    "seconds",
    as_secs,
    from_secs
);

moment!(
    /// Milliseconds since the unix epoch: the clock's resolution.
    UnixMillis,
    "milliseconds",
    as_millis,
    from_millis
);

impl UnixSecs {
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }
}

impl UnixMillis {
    /// The whole second this moment falls in.
    pub fn secs(self) -> UnixSecs {
        UnixSecs(self.0.div_euclid(1000))
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixMillis;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(Utc::now().timestamp_millis())
    }
}

/// A clock that only moves when told to: for tests of expiry, grace periods and session caps.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// Starts at the current wall-clock time, so entries written to real stores get sane TTLs.
    pub fn starting_now() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(SystemClock.now().0),
        })
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).expect("a test advances by less than 292 My");
        self.now_ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.now_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_the_whole_second_a_moment_falls_in() {
        assert_eq!(
            UnixMillis(1_700_000_000_999).secs(),
            UnixSecs(1_700_000_000)
        );
        assert_eq!(UnixMillis(-1).secs(), UnixSecs(-1));
    }

    #[test]
    fn spans_count_whole_units_and_saturate() {
        let span = Duration::from_millis(2_500);
        assert_eq!(UnixSecs(10) + span, UnixSecs(12));
        assert_eq!(UnixMillis(10) + span, UnixMillis(2_510));
        assert_eq!(UnixMillis(i64::MAX - 1) + span, UnixMillis(i64::MAX));
        assert_eq!(
            UnixSecs(12).saturating_since(UnixSecs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            UnixMillis(10).saturating_since(UnixMillis(12)),
            Duration::ZERO
        );
    }
}
