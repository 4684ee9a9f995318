//! Every attach snippet in `docs/operators.md` marked with the
//! `vcompute-attach` command that prints it is exactly that command's
//! output, so the operator guide cannot drift from the builders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;

use vmm_plugin::attach::{Attach, Vmm};

const MARK: &str = "<!-- vcompute-attach ";

/// `(command arguments, block text)` of every marked block.
fn marked_blocks(doc: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(rest) = l.strip_prefix(MARK) {
            let args = rest
                .strip_suffix("-->")
                .expect("unterminated marker")
                .trim();
            let fence = lines.get(i + 1).expect("marker at the end of the file");
            assert!(
                fence.starts_with("```"),
                "marker `{l}` not followed by a fenced block"
            );
            let mut body = String::new();
            let mut j = i + 2;
            while !lines.get(j).expect("unterminated block").starts_with("```") {
                body.push_str(lines[j]);
                body.push('\n');
                j += 1;
            }
            out.push((args.to_string(), body));
            i = j;
        }
        i += 1;
    }
    out
}

#[test]
fn operators_guide_snippets_match_the_builders() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operators.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let blocks = marked_blocks(&doc);
    let mut vmms = HashSet::new();
    for (args, body) in &blocks {
        let a = Attach::parse(args.split_whitespace().map(String::from))
            .unwrap_or_else(|e| panic!("marker `{args}`: {e}"));
        assert_eq!(
            body,
            &a.render(),
            "docs/operators.md block for `{args}` drifted"
        );
        vmms.insert(format!("{:?}", a.vmm));
    }
    for v in [Vmm::Qemu, Vmm::CloudHypervisor, Vmm::Libkrun] {
        assert!(
            vmms.contains(&format!("{v:?}")),
            "no marked block for {v:?}"
        );
    }
}

#[test]
fn a_drifted_block_is_caught() {
    let doc = "<!-- vcompute-attach libkrun --socket /s -->\n```c\nold text\n```\n";
    let blocks = marked_blocks(doc);
    assert_eq!(blocks.len(), 1);
    let a = Attach::parse(blocks[0].0.split_whitespace().map(String::from)).unwrap();
    assert_ne!(blocks[0].1, a.render());
}

#[test]
fn the_binary_prints_the_builder_output() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcompute-attach"))
        .args(["qemu", "--socket", "/run/vcompute.sock", "--memory", "1G"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let a = Attach::parse(
        ["qemu", "--socket", "/run/vcompute.sock", "--memory", "1G"]
            .into_iter()
            .map(String::from),
    )
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), a.render());
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_vcompute-attach"))
        .args(["qemu"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--socket"));
}
