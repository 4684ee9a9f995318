//! The daemon's log policy (docs/logging.md), checked on its sources:
//! every `error!`, `warn!` and `info!` line goes through the rate limiter
//! (`limited_error!`, `limited_warn!`, `limited_info!`, or `limited!` in
//! `src/log.rs`), unless a `// log-policy:` comment just above it says why
//! the line cannot repeat at a guest's will (once per daemon, say).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Lines above a direct log call that its `log-policy:` reason may sit on.
const REASON_WINDOW: usize = 3;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if !p.ends_with("tests") && !p.ends_with("testing") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_name().unwrap().to_string_lossy();
            if !name.ends_with("_tests.rs") && name != "test_util.rs" {
                out.push(p);
            }
        }
    }
}

/// Where a direct (unlimited) `error!`/`warn!`/`info!` call starts in
/// `line`, if it has one.
fn direct_call(line: &str) -> Option<usize> {
    let code = line.split("//").next().unwrap_or("");
    for mac in ["error!", "warn!", "info!"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(mac) {
            let at = from + at;
            let before = &code[..at];
            let word_start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |i| i + 1);
            let word = &code[word_start..at];
            if word.is_empty() || word == "tracing::" {
                return Some(at);
            }
            from = at + mac.len();
        }
    }
    None
}

/// Every direct call in `text` without a reason above it, as line numbers.
fn unjustified(text: &str, is_log_rs: bool) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // Unit tests at the end of a file may log as they like.
    let end = lines
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .unwrap_or(lines.len());
    let mut bad = Vec::new();
    let mut in_limited_macro = false;
    for (i, line) in lines.iter().enumerate().take(end) {
        if is_log_rs && line.starts_with("macro_rules! limited ") {
            in_limited_macro = true;
        }
        if in_limited_macro && line.starts_with('}') {
            in_limited_macro = false;
        }
        if line.trim_start().starts_with("//") || in_limited_macro {
            continue;
        }
        if direct_call(line).is_some() {
            let lo = i.saturating_sub(REASON_WINDOW);
            let justified = lines[lo..i].iter().any(|l| l.contains("// log-policy:"));
            if !justified {
                bad.push(i + 1);
            }
        }
    }
    bad
}

#[test]
fn the_checker_sees_direct_calls_and_reasons() {
    assert_eq!(direct_call("        warn!(x = 1, \"a\");"), Some(8));
    assert_eq!(direct_call("tracing::error!(\"a\")"), Some(9));
    assert_eq!(direct_call("limited_warn!(l, \"a\")"), None);
    assert_eq!(direct_call("crate::limited_info!(l, \"a\")"), None);
    assert_eq!(direct_call("let x = 1; // warn!(\"in a comment\")"), None);
    let text = "fn f() {\n    info!(\"a\");\n    // log-policy: once per daemon.\n    info!(\"b\");\n}\n#[cfg(test)]\nmod tests { fn t() { warn!(\"c\"); } }\n";
    assert_eq!(unjustified(text, false), vec![2]);
}

#[test]
fn guest_triggerable_lines_go_through_the_rate_limiter() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in unjustified(&text, f.ends_with("log.rs")) {
            bad.push(format!(
                "{}:{line}",
                f.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "log calls that bypass the rate limiter without a `// log-policy:` reason \
         (docs/logging.md):\n{}",
        bad.join("\n")
    );
}
