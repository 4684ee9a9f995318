//! The transports' numeric environment settings: their names, defaults
//! and accepted ranges, and how a value is read.
//!
//! A setting that is unset (or empty) takes its default silently. A value
//! that does not parse, or lies outside the accepted range, takes the
//! default too, with one log line (once per process and setting) naming
//! the variable, the value, what is accepted and the default used. The
//! crate's README lists them (a test checks that it says what is here).

use std::ffi::OsStr;
use std::fmt;

use protocol::limits::MAX_TRANSFER_LEN;

use super::arena::{DEFAULT_ARENA_MB, DEFAULT_HOST_MB};
use super::vhost_user::{DEFAULT_POLL_US, DEFAULT_TIMEOUT_MS};
use crate::log::Limiter;

/// Smallest arena, in MiB. The rings and the request and response areas
/// take about 21 MiB (a request area holds the protocol's largest body);
/// 32 MiB leaves about 11 MiB of bulk staging, enough for every call and
/// for pipelined chains.
pub const MIN_ARENA_MB: u64 = 32;
/// Largest arena, in MiB: one chain carries at most `MAX_TRANSFER_LEN`
/// (1 GiB) of bulk data, so staging much beyond that is never used, while
/// the daemon maps all of it.
pub const MAX_ARENA_MB: u64 = 2 * (MAX_TRANSFER_LEN >> 20);
/// Largest host heap, in MiB. The memfd is sparse, so the bound guards
/// against a typo (bytes for MiB) reserving absurd address space in this
/// process and in the daemon, which both map the whole heap.
pub const MAX_HOST_MB: u64 = 64 << 10;
/// Longest busy-poll, in microseconds. Sleeping instead costs one eventfd
/// round trip (about 50 µs); spinning longer than a scheduler tick only
/// takes the core the daemon may need.
pub const MAX_POLL_US: u64 = 10_000;
/// Shortest timeout, in milliseconds: a busy machine's scheduling delays
/// alone come near it, so a shorter one fails healthy calls.
pub const MIN_TIMEOUT_MS: u64 = 100;
/// Longest timeout, in milliseconds (a day): a daemon silent longer than
/// that is wedged, not busy.
pub const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// The arena size without the host heap (direct mode).
pub static ARENA_MB: Setting = Setting::new(
    "VCOMPUTE_ARENA_MB",
    "MiB",
    DEFAULT_ARENA_MB as u64,
    MIN_ARENA_MB,
    MAX_ARENA_MB,
);
/// The host heap's size (direct mode); 0 disables it.
pub static HOST_MB: Setting = Setting::new(
    "VCOMPUTE_HOST_MB",
    "MiB",
    DEFAULT_HOST_MB as u64,
    0,
    MAX_HOST_MB,
);
/// How long to busy-poll for a completion before sleeping (direct mode).
pub static POLL_US: Setting = Setting::new(
    "VCOMPUTE_POLL_US",
    "microseconds",
    DEFAULT_POLL_US,
    0,
    MAX_POLL_US,
);
/// How long to wait for a daemon that stays silent.
pub static TIMEOUT_MS: Setting = Setting::new(
    "VCOMPUTE_TIMEOUT_MS",
    "milliseconds",
    DEFAULT_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
    MAX_TIMEOUT_MS,
);

/// Every setting, for documentation and tests.
pub static ALL: [&Setting; 4] = [&ARENA_MB, &HOST_MB, &POLL_US, &TIMEOUT_MS];

/// One numeric environment variable: its default and accepted range.
#[derive(Debug)]
pub struct Setting {
    /// The variable's name.
    pub name: &'static str,
    /// The unit of its value, as said in messages.
    pub unit: &'static str,
    /// The value when it is unset or bad.
    pub default: u64,
    /// The smallest accepted value.
    pub min: u64,
    /// The largest accepted value.
    pub max: u64,
    /// One complaint per process.
    warned: Limiter,
}

/// Why a setting's value was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    /// It is not a whole number.
    #[error("is not a whole number")]
    NotANumber,
    /// It is a number outside the accepted range.
    #[error("is out of range")]
    OutOfRange,
}

/// A value that was not taken, as one log line says it.
#[derive(Debug)]
pub struct Complaint<'a> {
    setting: &'a Setting,
    value: String,
    why: BadValue,
}

impl Complaint<'_> {
    /// Why the value was not taken.
    pub fn why(&self) -> BadValue {
        self.why
    }
}

impl fmt::Display for Complaint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.setting;
        write!(
            f,
            "{}={:?} {}: expected {} to {} {}; using the default {}",
            s.name, self.value, self.why, s.min, s.max, s.unit, s.default
        )
    }
}

impl Setting {
    const fn new(name: &'static str, unit: &'static str, default: u64, min: u64, max: u64) -> Self {
        Setting {
            name,
            unit,
            default,
            min,
            max,
            warned: Limiter::once(),
        }
    }

    /// The value `raw` (the variable's text, `None` when unset) gives:
    /// the default when unset or empty, the number when it is a whole
    /// number in range, or why it is not taken.
    pub fn parse(&self, raw: Option<&OsStr>) -> Result<u64, Complaint<'_>> {
        let Some(raw) = raw else {
            return Ok(self.default);
        };
        let text = raw.to_string_lossy();
        let complaint = |why| Complaint {
            setting: self,
            value: text.clone().into_owned(),
            why,
        };
        let Some(s) = raw.to_str().map(str::trim) else {
            return Err(complaint(BadValue::NotANumber));
        };
        if s.is_empty() {
            return Ok(self.default);
        }
        // Wide enough that a negative or huge number reads as out of range.
        let n: i128 = s.parse().map_err(|e: std::num::ParseIntError| {
            complaint(match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    BadValue::OutOfRange
                }
                _ => BadValue::NotANumber,
            })
        })?;
        if n < i128::from(self.min) || n > i128::from(self.max) {
            return Err(complaint(BadValue::OutOfRange));
        }
        u64::try_from(n).map_err(|_| complaint(BadValue::OutOfRange))
    }

    /// The value `raw` gives, or the default with one log line (the
    /// first time for this setting) when it is not taken.
    pub fn value(&self, raw: Option<&OsStr>) -> u64 {
        self.parse(raw).unwrap_or_else(|c| {
            self.warned.log(format_args!("{c}"));
            self.default
        })
    }

    /// The value of the variable in this process's environment (see
    /// [`Setting::value`]).
    pub fn from_env(&self) -> u64 {
        self.value(std::env::var_os(self.name).as_deref())
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::*;
    use crate::transport::arena::Layout;
    use crate::transport::vhost_user::PIPELINE_DEPTH;

    fn parse(s: &Setting, raw: &str) -> Result<u64, BadValue> {
        s.parse(Some(OsStr::new(raw))).map_err(|c| c.why())
    }

    #[test]
    fn unset_or_empty_takes_the_default() {
        for s in ALL {
            assert_eq!(s.parse(None).ok(), Some(s.default), "{}", s.name);
            assert_eq!(parse(s, "").ok(), Some(s.default), "{}", s.name);
            assert_eq!(parse(s, "  ").ok(), Some(s.default), "{}", s.name);
        }
    }

    #[test]
    fn whole_numbers_in_range_are_taken() {
        assert_eq!(parse(&ARENA_MB, "64"), Ok(64));
        assert_eq!(parse(&ARENA_MB, " 64\n"), Ok(64), "surrounding space");
        assert_eq!(parse(&HOST_MB, "0"), Ok(0), "no host heap");
        assert_eq!(parse(&POLL_US, "0"), Ok(0), "no busy-poll");
        for s in ALL {
            assert_eq!(parse(s, &s.min.to_string()), Ok(s.min), "{}", s.name);
            assert_eq!(parse(s, &s.max.to_string()), Ok(s.max), "{}", s.name);
        }
    }

    #[test]
    fn garbage_is_not_a_number() {
        for raw in ["abc", "64M", "1.5", "0x40", "6 4", "--1"] {
            assert_eq!(parse(&ARENA_MB, raw), Err(BadValue::NotANumber), "{raw:?}");
        }
        let not_utf8 = OsString::from_vec(vec![b'6', 0xff]);
        assert_eq!(
            ARENA_MB.parse(Some(&not_utf8)).map_err(|c| c.why()),
            Err(BadValue::NotANumber)
        );
    }

    #[test]
    fn numbers_outside_the_range_are_out_of_range() {
        for s in ALL {
            assert_eq!(
                parse(s, &(s.max + 1).to_string()),
                Err(BadValue::OutOfRange)
            );
            assert_eq!(parse(s, "-1"), Err(BadValue::OutOfRange), "{}", s.name);
            assert_eq!(
                parse(s, "99999999999999999999999999999999999999999"),
                Err(BadValue::OutOfRange)
            );
            if s.min > 0 {
                assert_eq!(
                    parse(s, &(s.min - 1).to_string()),
                    Err(BadValue::OutOfRange)
                );
            }
        }
        assert_eq!(parse(&TIMEOUT_MS, "0"), Err(BadValue::OutOfRange));
    }

    #[test]
    fn the_complaint_names_variable_value_range_and_default() {
        let c = ARENA_MB.parse(Some(OsStr::new("lots"))).unwrap_err();
        assert_eq!(
            c.to_string(),
            "VCOMPUTE_ARENA_MB=\"lots\" is not a whole number: expected 32 to 2048 MiB; \
             using the default 256"
        );
        let c = POLL_US.parse(Some(OsStr::new("20000"))).unwrap_err();
        assert_eq!(
            c.to_string(),
            "VCOMPUTE_POLL_US=\"20000\" is out of range: expected 0 to 10000 microseconds; \
             using the default 100"
        );
    }

    #[test]
    fn options_take_good_values_and_keep_defaults_for_bad_ones() {
        use crate::transport::vhost_user::Options;
        use std::time::Duration;
        assert_eq!(Options::from_vars(|_| None), Options::default());
        let vars = |name: &str| match name {
            "VCOMPUTE_ARENA_MB" => Some(OsString::from("64")),
            "VCOMPUTE_HOST_MB" => Some(OsString::from("0")),
            "VCOMPUTE_POLL_US" => Some(OsString::from("fast")),
            "VCOMPUTE_TIMEOUT_MS" => Some(OsString::from("50")),
            _ => None,
        };
        let o = Options::from_vars(vars);
        let d = Options::default();
        assert_eq!(o.arena_len, 64 << 20);
        assert_eq!(o.host_len, 0);
        assert_eq!(o.poll, d.poll, "not a number: the default");
        assert_eq!(o.timeout, d.timeout, "below the minimum: the default");
        assert_eq!(d.timeout, Duration::from_millis(TIMEOUT_MS.default));
    }

    #[test]
    fn the_readme_states_each_default_and_range() {
        let readme = include_str!("../../README.md");
        for s in ALL {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", s.name)))
                .unwrap_or_else(|| panic!("no README row for {}", s.name));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells.get(2), Some(&s.default.to_string().as_str()), "{row}");
            let range = cells.get(3).copied().unwrap_or_default();
            assert!(
                range.starts_with(&s.min.to_string()) && range.contains(&format!("to {}", s.max)),
                "{row}"
            );
        }
    }

    #[test]
    fn defaults_lie_in_their_ranges() {
        for s in ALL {
            assert!(s.min <= s.default && s.default <= s.max, "{}", s.name);
        }
    }

    #[test]
    fn the_smallest_arena_lays_out_and_pipelines() {
        let len = (MIN_ARENA_MB << 20) as usize;
        let layout = Layout::new(len, protocol::NUM_QUEUES, 0).expect("the minimum lays out");
        assert!(layout.staging.len() >= 8 << 20, "{layout:?}");
        assert_eq!(layout.slots(PIPELINE_DEPTH).len(), PIPELINE_DEPTH);
        let max_host = (MAX_HOST_MB << 20) as usize;
        let big = (MAX_ARENA_MB << 20) as usize + max_host;
        assert!(Layout::new(big, protocol::NUM_QUEUES, max_host).is_some());
    }
}
