//! The machine description stored with every result: CPU, memory, OS,
//! GPUs on the PCI bus, and the date.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What the results were measured on.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
    /// Display controllers on the PCI bus as `vendor:device` ids (with the
    /// NVIDIA driver version when it is loaded); empty when there are none.
    pub gpus: Vec<String>,
    /// 1-, 5- and 15-minute load averages when the run ended: other work
    /// on the machine shows here, and in the spread of the samples.
    pub load_average: String,
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value after `key` and a separator on the first line that has it.
fn field<'a>(text: &'a str, key: &str, sep: char) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(sep)?;
        (k.trim() == key).then(|| v.trim())
    })
}

fn pci_display_controllers() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/bus/pci/devices") else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter(|e| read(e.path().join("class")).trim().starts_with("0x03"))
        .map(|e| {
            let id = |f: &str| {
                read(e.path().join(f))
                    .trim()
                    .trim_start_matches("0x")
                    .to_string()
            };
            format!(
                "{}:{} at {}",
                id("vendor"),
                id("device"),
                e.file_name().to_string_lossy()
            )
        })
        .collect();
    found.sort();
    let nvidia = read("/proc/driver/nvidia/version");
    if let Some(line) = nvidia.lines().next() {
        found.push(format!("NVIDIA driver: {}", line.trim()));
    }
    found
}

/// Describes this machine.
pub fn describe() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let os = read("/etc/os-release");
    Machine {
        cpu: field(&cpuinfo, "model name", ':')
            .unwrap_or("unknown")
            .to_string(),
        logical_cpus: std::thread::available_parallelism().map_or(0, usize::from),
        memory_bytes: field(&meminfo, "MemTotal", ':')
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024),
        os: field(&os, "PRETTY_NAME", '=')
            .unwrap_or("unknown")
            .trim_matches('"')
            .to_string(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        gpus: pci_display_controllers(),
        load_average: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(secs: u64) -> String {
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Now, in UTC.
pub fn now_utc() -> String {
    iso_utc(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn describes_this_linux_machine() {
        let m = describe();
        assert!(m.logical_cpus >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.kernel.is_empty());
        assert_eq!(m.load_average.split(' ').count(), 3, "{m:?}");
        assert_eq!(
            field("a: 1\nmodel name\t: X Y\n", "model name", ':'),
            Some("X Y")
        );
    }
}
