//! What the supervisor knows of its workers: each live one (pid, what it
//! serves, its client, since when), the last ones that ended and why, and
//! counters; rendered as Prometheus text for `--metrics`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Ended workers remembered for the metrics.
const RECENT_EXITS: usize = 32;

/// How a worker ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Its connection ended and it exited cleanly.
    Clean,
    /// It exited with a status other than 0.
    Code(i32),
    /// A signal ended it (an abort, a fault, a forbidden system call).
    Signal(i32),
    /// Its watchdog ended it: one call ran longer than the limit.
    Watchdog,
    /// It could not get ready (sandbox or runtime).
    Setup,
}

impl ExitReason {
    /// The label value in the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ExitReason::Clean => "clean",
            ExitReason::Code(_) => "error",
            ExitReason::Signal(_) => "signal",
            ExitReason::Watchdog => "watchdog",
            ExitReason::Setup => "setup",
        }
    }

    /// A description for the log.
    pub fn describe(&self) -> String {
        match self {
            ExitReason::Clean => "exited cleanly".into(),
            ExitReason::Code(c) => format!("exited with status {c}"),
            ExitReason::Signal(s) => format!("killed by signal {s} ({})", signal_name(*s)),
            ExitReason::Watchdog => "ended by the watchdog (a call ran too long)".into(),
            ExitReason::Setup => "could not get ready".into(),
        }
    }

    /// True for anything but a clean exit.
    pub fn abnormal(&self) -> bool {
        *self != ExitReason::Clean
    }
}

/// The name of a signal a worker may die of.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT: the runtime aborted",
        libc::SIGSEGV => "SIGSEGV: invalid memory access",
        libc::SIGBUS => "SIGBUS: bad memory access",
        libc::SIGILL => "SIGILL: illegal instruction",
        libc::SIGFPE => "SIGFPE: arithmetic fault",
        libc::SIGSYS => "SIGSYS: a forbidden system call",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU: CPU time limit",
        _ => "other",
    }
}

/// One live worker.
#[derive(Clone, Debug)]
pub struct Record {
    /// What it does: `warm`, `vhost-user` or `stream`.
    pub kind: &'static str,
    /// The last client name one of its sessions gave (untrusted).
    pub client: Option<String>,
    /// Sessions opened on it.
    pub sessions: u64,
    /// Sessions open now, as a device-mode worker last said.
    pub open_sessions: Option<u32>,
    /// When it started.
    pub started: Instant,
}

#[derive(Clone, Debug)]
struct Exit {
    pid: u32,
    kind: &'static str,
    client: Option<String>,
    reason: ExitReason,
    uptime: f64,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<u32, Record>,
    recent: VecDeque<Exit>,
    started: u64,
    accepted: u64,
    rejected: u64,
    exits: HashMap<&'static str, u64>,
}

/// Shared by the accept loop, the monitors and the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct State(Arc<Mutex<Inner>>);

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker was started.
    pub fn started(&self, pid: u32, at: Instant) {
        let mut s = self.lock();
        s.started += 1;
        s.live.insert(
            pid,
            Record {
                kind: "warm",
                client: None,
                sessions: 0,
                open_sessions: None,
                started: at,
            },
        );
    }

    /// A worker took a connection of `kind`.
    pub fn serving(&self, pid: u32, kind: &'static str) {
        let mut s = self.lock();
        s.accepted += 1;
        if let Some(r) = s.live.get_mut(&pid) {
            r.kind = kind;
        }
    }

    /// A connection was refused (the session limit).
    pub fn rejected(&self) {
        self.lock().rejected += 1;
    }

    /// A worker's session opened, by `client`.
    pub fn session(&self, pid: u32, client: String) {
        if let Some(r) = self.lock().live.get_mut(&pid) {
            r.sessions += 1;
            r.client = Some(client);
        }
    }

    /// A device-mode worker has `open` sessions open now.
    pub fn open_sessions(&self, pid: u32, open: u32) {
        if let Some(r) = self.lock().live.get_mut(&pid) {
            r.open_sessions = Some(open);
        }
    }

    /// A worker ended; returns its record.
    pub fn ended(&self, pid: u32, reason: ExitReason) -> Option<Record> {
        let mut s = self.lock();
        let r = s.live.remove(&pid)?;
        *s.exits.entry(reason.label()).or_default() += 1;
        if s.recent.len() == RECENT_EXITS {
            s.recent.pop_front();
        }
        s.recent.push_back(Exit {
            pid,
            kind: r.kind,
            client: r.client.clone(),
            reason,
            uptime: r.started.elapsed().as_secs_f64(),
        });
        Some(r)
    }

    /// Workers serving a connection now.
    pub fn serving_count(&self) -> usize {
        self.lock()
            .live
            .values()
            .filter(|r| r.kind != "warm")
            .count()
    }

    /// Every live worker, by pid.
    pub fn live(&self) -> Vec<(u32, Record)> {
        self.lock()
            .live
            .iter()
            .map(|(p, r)| (*p, r.clone()))
            .collect()
    }

    /// Connections refused so far.
    pub fn rejected_total(&self) -> u64 {
        self.lock().rejected
    }

    /// The Prometheus text exposition of everything above, with each live
    /// worker's resident memory read from `/proc`.
    pub fn render(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        metric(
            "vcompute_workers",
            "gauge",
            "Worker processes, by what they do.",
        );
        let mut by_kind: HashMap<&str, u64> = HashMap::new();
        for r in s.live.values() {
            *by_kind.entry(r.kind).or_default() += 1;
        }
        let mut body = String::new();
        for kind in ["warm", "vhost-user", "device", "stream"] {
            let n = by_kind.get(kind).copied().unwrap_or(0);
            let _ = writeln!(body, "vcompute_workers{{kind=\"{kind}\"}} {n}");
        }
        let _ = write!(
            body,
            "# HELP vcompute_workers_started_total Worker processes started.\n\
             # TYPE vcompute_workers_started_total counter\n\
             vcompute_workers_started_total {}\n\
             # HELP vcompute_connections_total Connections handed to a worker.\n\
             # TYPE vcompute_connections_total counter\n\
             vcompute_connections_total {}\n\
             # HELP vcompute_connections_rejected_total Connections refused at the session limit.\n\
             # TYPE vcompute_connections_rejected_total counter\n\
             vcompute_connections_rejected_total {}\n\
             # HELP vcompute_worker_exits_total Workers that ended, by reason.\n\
             # TYPE vcompute_worker_exits_total counter\n",
            s.started, s.accepted, s.rejected
        );
        for reason in ["clean", "error", "signal", "watchdog", "setup"] {
            let n = s.exits.get(reason).copied().unwrap_or(0);
            let _ = writeln!(
                body,
                "vcompute_worker_exits_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = write!(
            body,
            "# HELP vcompute_worker_uptime_seconds Seconds since each live worker started.\n\
             # TYPE vcompute_worker_uptime_seconds gauge\n"
        );
        let mut live: Vec<_> = s.live.iter().collect();
        live.sort_by_key(|(p, _)| **p);
        for (pid, r) in &live {
            let _ = writeln!(
                body,
                "vcompute_worker_uptime_seconds{{{}}} {:.3}",
                labels(**pid, r.kind, r.client.as_deref()),
                r.started.elapsed().as_secs_f64()
            );
        }
        let _ = write!(
            body,
            "# HELP vcompute_worker_resident_bytes Resident memory of each live worker.\n\
             # TYPE vcompute_worker_resident_bytes gauge\n"
        );
        for (pid, r) in &live {
            if let Some(rss) = resident_bytes(**pid) {
                let _ = writeln!(
                    body,
                    "vcompute_worker_resident_bytes{{{}}} {rss}",
                    labels(**pid, r.kind, r.client.as_deref())
                );
            }
        }
        let _ = write!(
            body,
            "# HELP vcompute_worker_sessions Sessions opened on each live worker.\n\
             # TYPE vcompute_worker_sessions gauge\n"
        );
        for (pid, r) in &live {
            let _ = writeln!(
                body,
                "vcompute_worker_sessions{{{}}} {}",
                labels(**pid, r.kind, r.client.as_deref()),
                r.sessions
            );
        }
        let _ = write!(
            body,
            "# HELP vcompute_worker_open_sessions Sessions open now on each device-mode worker.\n\
             # TYPE vcompute_worker_open_sessions gauge\n"
        );
        for (pid, r) in &live {
            if let Some(open) = r.open_sessions {
                let _ = writeln!(
                    body,
                    "vcompute_worker_open_sessions{{{}}} {open}",
                    labels(**pid, r.kind, r.client.as_deref())
                );
            }
        }
        let _ = write!(
            body,
            "# HELP vcompute_worker_exit_uptime_seconds How long each recently ended worker ran, with why it ended.\n\
             # TYPE vcompute_worker_exit_uptime_seconds gauge\n"
        );
        for e in &s.recent {
            let _ = writeln!(
                body,
                "vcompute_worker_exit_uptime_seconds{{{},reason=\"{}\",detail=\"{}\"}} {:.3}",
                labels(e.pid, e.kind, e.client.as_deref()),
                e.reason.label(),
                escape(&e.reason.describe()),
                e.uptime
            );
        }
        out.push_str(&body);
        out
    }
}

fn labels(pid: u32, kind: &str, client: Option<&str>) -> String {
    format!(
        "pid=\"{pid}\",kind=\"{kind}\",client=\"{}\"",
        escape(client.unwrap_or(""))
    )
}

/// A label value in the text format: backslash, quote and newline escaped,
/// other control characters dropped (a client name is the guest's).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A process's resident memory, from `/proc/PID/statm`.
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf takes a plain integer.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names_cannot_break_the_text_format() {
        let st = State::default();
        st.started(4242, Instant::now());
        st.serving(4242, "stream");
        st.session(4242, "evil\"} 1\nvcompute_workers 9\u{7}".into());
        let text = st.render();
        assert!(
            text.contains(r#"client="evil\"} 1\nvcompute_workers 9""#),
            "{text}"
        );
        // Every line is a comment or one sample.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("vcompute_"),
                "{line}"
            );
        }
        assert!(!text.contains("vcompute_worker_open_sessions{"));
        st.open_sessions(4242, 3);
        assert!(st
            .render()
            .contains("vcompute_worker_open_sessions{pid=\"4242\""));
        assert!(st.render().contains("\"} 3\n"));
        st.ended(4242, ExitReason::Signal(libc::SIGSYS));
        let text = st.render();
        assert!(text.contains("vcompute_worker_exits_total{reason=\"signal\"} 1"));
        assert!(text.contains("SIGSYS"));
        assert_eq!(st.serving_count(), 0);
    }
}
