//! Attach syntax for the VMMs that take the daemon with no code of ours:
//! QEMU (through a carrier device), Cloud Hypervisor (its generic
//! vhost-user device) and libkrun (`krun_add_vhost_user_device`). The
//! `vcompute-attach` binary prints these; `docs/operators.md` quotes them
//! (a test keeps the two equal).

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::spec::{DEVICE_ID, NUM_QUEUES, QUEUE_SIZE};

/// The virtio device QEMU carries the daemon as: vhost-user-fs (ID 26),
/// whose generic vhost-user plumbing passes our queues through unchanged.
/// The driver sees the carrier's config space, not ours, so it reads
/// `F_CONFIG` cleared and assumes [`crate::spec::DeviceConfig::CARRIER`].
pub const QEMU_CARRIER: &str = "vhost-user-fs-pci";
/// The carrier's virtio device ID.
pub const QEMU_CARRIER_ID: u32 = 26;

/// Which VMM to print for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmm {
    /// QEMU command-line options.
    Qemu,
    /// Cloud Hypervisor command-line options.
    CloudHypervisor,
    /// A libkrun C call.
    Libkrun,
}

/// What an attachment needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// The VMM.
    pub vmm: Vmm,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Guest memory size, in the VMM's syntax (`4G`).
    pub memory: String,
    /// The id/tag naming the device.
    pub id: String,
    /// QEMU machine type.
    pub machine: String,
    /// Cloud Hypervisor major version: up to 52 the device ID's key is
    /// `virtio_id`, from 53 `device_type`.
    pub ch_version: u32,
}

/// A bad `vcompute-attach` command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttachError {
    /// No VMM named, or an unknown one.
    #[error("name a VMM: qemu, cloud-hypervisor or libkrun")]
    Vmm,
    /// `--socket` missing.
    #[error("--socket PATH is required")]
    Socket,
    /// An option without its value.
    #[error("{0} needs a value")]
    Value(String),
    /// An unknown option.
    #[error("unknown option {0}")]
    Unknown(String),
    /// A value that does not parse or cannot be used.
    #[error("bad value for {0}: {1}")]
    Bad(&'static str, String),
}

/// The usage line.
pub const USAGE: &str = "usage: vcompute-attach qemu|cloud-hypervisor|libkrun --socket PATH \
[--memory SIZE] [--id ID] [--machine TYPE] [--ch-version N]";

impl Attach {
    /// Parses `vcompute-attach`'s arguments (without the program name).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, AttachError> {
        let mut it = args.into_iter();
        let vmm = match it.next().as_deref() {
            Some("qemu") => Vmm::Qemu,
            Some("cloud-hypervisor") => Vmm::CloudHypervisor,
            Some("libkrun") => Vmm::Libkrun,
            _ => return Err(AttachError::Vmm),
        };
        let mut a = Attach {
            vmm,
            socket: PathBuf::new(),
            memory: "4G".into(),
            id: "vcompute".into(),
            machine: "q35".into(),
            ch_version: 53,
        };
        let mut socket = None;
        while let Some(opt) = it.next() {
            let mut val = || it.next().ok_or_else(|| AttachError::Value(opt.clone()));
            match opt.as_str() {
                "--socket" => socket = Some(PathBuf::from(val()?)),
                "--memory" => a.memory = val()?,
                "--id" => a.id = val()?,
                "--machine" => a.machine = val()?,
                "--ch-version" => {
                    let v = val()?;
                    a.ch_version = v.parse().map_err(|_| AttachError::Bad("--ch-version", v))?;
                }
                _ => return Err(AttachError::Unknown(opt)),
            }
        }
        a.socket = socket.ok_or(AttachError::Socket)?;
        for (name, v) in [
            ("--id", &a.id),
            ("--memory", &a.memory),
            ("--machine", &a.machine),
        ] {
            // Commas and quotes would split or end the VMMs' option syntax.
            if v.is_empty() || v.contains([',', '"', '\n', ' ']) {
                return Err(AttachError::Bad(name, v.clone()));
            }
        }
        let s = a.socket.to_string_lossy();
        if s.contains([',', '"', '\n']) {
            return Err(AttachError::Bad("--socket", s.into_owned()));
        }
        Ok(a)
    }

    /// The attachment's text: command-line options one per line (each a
    /// shell word pair), or the C statements for libkrun.
    pub fn render(&self) -> String {
        let path = self.socket.display();
        let id = &self.id;
        let mem = &self.memory;
        let mut out = String::new();
        match self.vmm {
            Vmm::Qemu => {
                let _ = writeln!(
                    out,
                    "-object memory-backend-memfd,id=mem,size={mem},share=on"
                );
                let _ = writeln!(out, "-machine {},memory-backend=mem", self.machine);
                let _ = writeln!(out, "-chardev socket,id={id},path={path}");
                let _ = writeln!(
                    out,
                    "-device {QEMU_CARRIER},chardev={id},tag={id},queue-size={QUEUE_SIZE}"
                );
            }
            Vmm::CloudHypervisor => {
                let key = if self.ch_version <= 52 {
                    "virtio_id"
                } else {
                    "device_type"
                };
                let sizes = vec![QUEUE_SIZE.to_string(); NUM_QUEUES].join(",");
                let _ = writeln!(out, "--memory size={mem},shared=on");
                let _ = writeln!(
                    out,
                    "--generic-vhost-user \"socket={path},{key}={DEVICE_ID},queue_sizes=[{sizes}]\""
                );
            }
            Vmm::Libkrun => {
                let sizes = vec![QUEUE_SIZE.to_string(); NUM_QUEUES].join(", ");
                let _ = writeln!(out, "uint16_t sizes[{NUM_QUEUES}] = {{{sizes}}};");
                let _ = writeln!(
                    out,
                    "krun_add_vhost_user_device(ctx, {DEVICE_ID}, \"{path}\", \"{id}\", {NUM_QUEUES}, sizes);"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Result<Attach, AttachError> {
        Attach::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn each_vmm() {
        let q = parse("qemu --socket /s.sock --memory 2G").unwrap().render();
        assert_eq!(
            q,
            "-object memory-backend-memfd,id=mem,size=2G,share=on\n\
             -machine q35,memory-backend=mem\n\
             -chardev socket,id=vcompute,path=/s.sock\n\
             -device vhost-user-fs-pci,chardev=vcompute,tag=vcompute,queue-size=256\n"
        );
        let c52 = parse("cloud-hypervisor --socket /s --ch-version 52")
            .unwrap()
            .render();
        assert!(c52.contains("\"socket=/s,virtio_id=56,queue_sizes=[256,256]\""));
        assert!(c52.starts_with("--memory size=4G,shared=on\n"));
        let c = parse("cloud-hypervisor --socket /s").unwrap().render();
        assert!(c.contains("device_type=56,"));
        let k = parse("libkrun --socket /s").unwrap().render();
        assert!(k.contains("krun_add_vhost_user_device(ctx, 56, \"/s\", \"vcompute\", 2, sizes);"));
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(parse("xen --socket /s"), Err(AttachError::Vmm));
        assert_eq!(parse("qemu"), Err(AttachError::Socket));
        assert_eq!(
            parse("qemu --socket"),
            Err(AttachError::Value("--socket".into()))
        );
        assert_eq!(
            parse("qemu --socket /s --x"),
            Err(AttachError::Unknown("--x".into()))
        );
        assert!(matches!(
            parse("qemu --socket /a,b"),
            Err(AttachError::Bad(..))
        ));
        assert!(matches!(
            parse("qemu --socket /s --id a,b"),
            Err(AttachError::Bad(..))
        ));
        assert!(matches!(
            parse("cloud-hypervisor --socket /s --ch-version x"),
            Err(AttachError::Bad(..))
        ));
    }
}
