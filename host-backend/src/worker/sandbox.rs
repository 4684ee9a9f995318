//! The sandbox a worker enters before it initialises the runtime or reads
//! a guest byte. Every thread the runtime starts later inherits it (Landlock
//! restricts only the calling thread and its descendants on kernels before
//! Linux 7.0, so it must come first).
//!
//! 1. **rlimits**: no core dumps (they would hold a tenant's data); at most
//!    `max_files` descriptors; optionally address space and CPU time.
//! 2. **no_new_privs**: nothing the worker executes gains privileges.
//! 3. **Landlock** (file system): read (and execute) the runtime's
//!    libraries and data, read the system facts runtimes probe, read and
//!    write a few device nodes (GPU ones where present) and the worker's
//!    private scratch directory; nothing else. Signals to processes outside
//!    the sandbox, and abstract unix sockets outside it, are scoped out
//!    where the kernel can (ABI 6).
//! 4. **seccomp**: a denylist of system calls a compute runtime never
//!    needs and an exploit would (tracing, other processes' memory, kernel
//!    modules, mounts, namespaces, BPF, io_uring, network sockets); making
//!    one kills the worker (`SIGSYS`). `execve` stays allowed: POCL runs
//!    the system linker (`/usr/bin/ld`) for every kernel it builds, and what
//!    it runs inherits all of the above.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus, Scope, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::config::SandboxConfig;

/// The Landlock ABI whose rights the rules are written for; older kernels
/// enforce what they can (best effort).
const LANDLOCK_ABI: ABI = ABI::V6;

/// Read and execute: the runtime's libraries, compilers and data, the
/// dynamic loader, and the system linker POCL runs. Not all of `/usr`:
/// headers (`/usr/include`) and most of `/usr/share` are host files a
/// kernel source could otherwise `#include` by absolute path.
const READ_EXEC: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libexec",
    "/usr/local/lib",
    "/usr/bin",
    "/usr/sbin",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    // POCL's kernel library and headers, the linker's messages, the
    // NVIDIA driver's data files.
    "/usr/share/pocl",
    "/usr/share/locale",
    "/usr/share/nvidia",
];

/// Read only: what loaders and runtimes read after start-up.
const READ: &[&str] = &[
    // The dynamic loader's cache and configuration (every exec).
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    // The ICD loader's vendor list; the NVIDIA driver's profiles.
    "/etc/OpenCL",
    "/etc/nvidia",
    // Time zone and the distribution name hwloc reports.
    "/etc/localtime",
    "/etc/os-release",
    "/etc/debian_version",
    // The worker's own process (threads, maps, cpuset, mounts), never
    // another's: `/proc/self` resolves to this worker's directory.
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    // Allocators read the overcommit policy.
    "/proc/sys/vm/overcommit_memory",
    // The NVIDIA driver's state.
    "/proc/driver/nvidia",
    // Topology and memory facts hwloc and the CUDA driver probe (the PCI
    // devices' own directories are added as found: `/sys/bus/pci` links
    // there, and the CPU's PCI vendor is what POCL reports as its vendor).
    "/sys/devices/system",
    "/sys/bus",
    "/sys/fs/cgroup",
    "/sys/kernel/mm",
    // Loaded modules' versions and parameters (the NVIDIA driver's own).
    "/sys/module",
];

/// Read and write: harmless character devices, and the NVIDIA driver's
/// device nodes (control, UVM, one per GPU) where they exist.
const READ_WRITE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
    "/dev/nvidia-caps",
];

/// System calls a worker is killed for. None is needed by an OpenCL or CUDA
/// runtime; each is a way out of the sandbox or into another process.
const DENIED_SYSCALLS: &[(i64, &str)] = &[
    (libc::SYS_ptrace, "tracing other processes"),
    (
        libc::SYS_process_vm_readv,
        "reading other processes' memory",
    ),
    (
        libc::SYS_process_vm_writev,
        "writing other processes' memory",
    ),
    (libc::SYS_kcmp, "comparing other processes' resources"),
    (libc::SYS_pidfd_getfd, "taking other processes' descriptors"),
    (libc::SYS_init_module, "loading kernel modules"),
    (libc::SYS_finit_module, "loading kernel modules"),
    (libc::SYS_delete_module, "unloading kernel modules"),
    (libc::SYS_kexec_load, "replacing the kernel"),
    (libc::SYS_kexec_file_load, "replacing the kernel"),
    (libc::SYS_reboot, "rebooting"),
    (libc::SYS_mount, "mounting"),
    (libc::SYS_umount2, "unmounting"),
    (libc::SYS_pivot_root, "changing the root"),
    (libc::SYS_chroot, "changing the root"),
    (libc::SYS_unshare, "new namespaces"),
    (libc::SYS_setns, "entering namespaces"),
    (libc::SYS_swapon, "swap"),
    (libc::SYS_swapoff, "swap"),
    (libc::SYS_acct, "process accounting"),
    (libc::SYS_bpf, "BPF programs"),
    (
        libc::SYS_perf_event_open,
        "performance counters of other processes",
    ),
    (libc::SYS_userfaultfd, "a common exploit primitive"),
    (libc::SYS_io_uring_setup, "io_uring, which bypasses seccomp"),
    (libc::SYS_io_uring_enter, "io_uring, which bypasses seccomp"),
    (
        libc::SYS_io_uring_register,
        "io_uring, which bypasses seccomp",
    ),
    (libc::SYS_keyctl, "the kernel keyring"),
    (libc::SYS_add_key, "the kernel keyring"),
    (libc::SYS_request_key, "the kernel keyring"),
    (
        libc::SYS_open_by_handle_at,
        "opening files past Landlock by handle",
    ),
    (libc::SYS_name_to_handle_at, "file handles"),
    (libc::SYS_fanotify_init, "watching the file system"),
    (libc::SYS_settimeofday, "setting the clock"),
    (libc::SYS_clock_settime, "setting the clock"),
    (libc::SYS_clock_adjtime, "setting the clock"),
    (libc::SYS_adjtimex, "setting the clock"),
    (libc::SYS_iopl, "port I/O"),
    (libc::SYS_ioperm, "port I/O"),
    (libc::SYS_quotactl, "disk quotas"),
];

/// Socket families a worker is killed for creating: it talks to its guest
/// over descriptors it was handed, never over a network.
const DENIED_SOCKET_FAMILIES: &[i32] = &[libc::AF_INET, libc::AF_INET6, libc::AF_PACKET];

/// Why the sandbox could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A resource limit could not be set.
    #[error("cannot set {0}")]
    Rlimit(&'static str, #[source] io::Error),
    /// `PR_SET_NO_NEW_PRIVS` failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] io::Error),
    /// The Landlock ruleset could not be built or enforced.
    #[error("cannot enforce the file-system rules")]
    Landlock(#[from] RulesetError),
    /// The seccomp filter could not be built.
    #[error("cannot build the system-call filter")]
    SeccompBuild(#[source] seccompiler::BackendError),
    /// The seccomp filter could not be compiled or installed.
    #[error("cannot install the system-call filter")]
    Seccomp(#[source] seccompiler::Error),
}

/// How far the kernel enforces the file-system rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Every rule.
    Full,
    /// Some rights the kernel does not know are not restricted.
    Partial,
    /// The kernel has no Landlock: file access is not restricted.
    None,
}

impl Enforcement {
    /// The word the supervisor logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Full => "full",
            Enforcement::Partial => "partial",
            Enforcement::None => "none",
        }
    }
}

/// Enters the sandbox: this thread and everything it starts afterwards.
/// `scratch` is the worker's private directory (read, write, create).
pub fn enter(config: &SandboxConfig, scratch: &Path) -> Result<Enforcement, SandboxError> {
    set_rlimits(config)?;
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::NoNewPrivs(io::Error::last_os_error()));
    }
    let enforcement = restrict_files(config, scratch)?;
    install_seccomp()?;
    Ok(enforcement)
}

fn set_rlimit(
    resource: libc::__rlimit_resource_t,
    value: u64,
    name: &'static str,
) -> Result<(), SandboxError> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `lim` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(SandboxError::Rlimit(name, io::Error::last_os_error()));
    }
    Ok(())
}

fn set_rlimits(config: &SandboxConfig) -> Result<(), SandboxError> {
    set_rlimit(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
    set_rlimit(libc::RLIMIT_NOFILE, config.max_files, "RLIMIT_NOFILE")?;
    if let Some(bytes) = config.address_space {
        set_rlimit(libc::RLIMIT_AS, bytes, "RLIMIT_AS")?;
    }
    if let Some(secs) = config.cpu_seconds {
        set_rlimit(libc::RLIMIT_CPU, secs, "RLIMIT_CPU")?;
    }
    Ok(())
}

/// The entries of `dir` whose names `keep` accepts.
fn entries(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(d) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    d.filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect()
}

/// The PCI root complexes' device trees (`/sys/devices/pci0000:00`, ...).
fn pci_trees() -> Vec<PathBuf> {
    entries("/sys/devices", |n| n.starts_with("pci"))
}

/// The NVIDIA per-GPU device nodes present (`/dev/nvidia0`, ...).
fn gpu_nodes() -> Vec<PathBuf> {
    entries("/dev", |n| {
        n.strip_prefix("nvidia")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn restrict_files(config: &SandboxConfig, scratch: &Path) -> Result<Enforcement, SandboxError> {
    let abi = LANDLOCK_ABI;
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    let read_exec = AccessFs::from_read(abi);
    let devices = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev;
    let everything = AccessFs::from_all(abi);
    let status = Ruleset::default()
        .handle_access(everything)?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(READ_EXEC, read_exec))?
        .add_rules(path_beneath_rules(READ, read))?
        .add_rules(path_beneath_rules(pci_trees(), read))?
        .add_rules(path_beneath_rules(&config.allow_read, read))?
        .add_rules(path_beneath_rules(READ_WRITE_DEVICES, devices))?
        .add_rules(path_beneath_rules(gpu_nodes(), devices))?
        .add_rules(path_beneath_rules(&config.allow_rw, everything))?
        .add_rules(path_beneath_rules([scratch], everything))?
        .restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    })
}

fn seccomp_program() -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED_SYSCALLS
        .iter()
        .map(|&(nr, _)| (nr, Vec::new()))
        .collect();
    let families = DENIED_SOCKET_FAMILIES
        .iter()
        .map(|&f| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, f as u64)
                .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(SandboxError::SeccompBuild)?;
    rules.insert(libc::SYS_socket, families);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(SandboxError::SeccompBuild)?;
    let filter = SeccompFilter::new(
        rules,
        // Everything not listed is allowed.
        SeccompAction::Allow,
        // A listed call kills the whole worker.
        SeccompAction::KillProcess,
        arch,
    )
    .map_err(SandboxError::SeccompBuild)?;
    filter.try_into().map_err(SandboxError::SeccompBuild)
}

fn install_seccomp() -> Result<(), SandboxError> {
    let prog = seccomp_program()?;
    // All threads: in a worker there is only this one yet, but a runtime
    // loaded before (in tests) may have started some.
    seccompiler::apply_filter_all_threads(&prog).map_err(SandboxError::Seccomp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_builds_for_this_machine() {
        let prog = seccomp_program().unwrap();
        assert!(prog.len() > DENIED_SYSCALLS.len());
    }

    #[test]
    fn gpu_nodes_are_only_numbered_nvidia_devices() {
        for p in gpu_nodes() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("nvidia") && name[6..].parse::<u32>().is_ok());
        }
    }
}
