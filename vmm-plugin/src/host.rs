//! What the host VMM provides the device: its guest memory, an interrupt
//! line, and (optionally) ioeventfd registration for `QueueNotify`.

use std::io;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Why the device raises its interrupt; the matching `InterruptStatus` bit
/// is already set when [`VmmHost::signal`] is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptCause {
    /// The daemon used buffers of a queue.
    UsedBuffer,
    /// The config space changed, or the device needs a reset.
    ConfigChange,
}

/// The host VMM's side of the device. Implemented once per VMM (see
/// `docs/vmm-plugin.md` for Firecracker and Dragonball).
pub trait VmmHost: Send + Sync + 'static {
    /// The guest's memory. Every region must be backed by a shared file
    /// mapping (memfd, hugetlbfs, tmpfs) with its file offset, as the
    /// daemon maps the same pages. Called at every `DRIVER_OK`.
    fn memory(&self) -> GuestMemoryMmap;

    /// Raises the device's interrupt (an edge: Firecracker and Dragonball
    /// write an irqfd; a VMM with a level line asserts it until the driver
    /// acknowledges through `InterruptACK`).
    fn signal(&self, cause: InterruptCause);

    /// Registers `kick` as an ioeventfd for a 4-byte write of `queue` at
    /// the device's `QueueNotify` register (offset
    /// [`crate::spec::reg::QUEUE_NOTIFY`] in its MMIO window). Returns
    /// whether it did; when not, the MMIO write path signals `kick` itself.
    /// Called once per queue when the device is created; the same eventfds
    /// serve every daemon connection.
    fn register_notify(&self, queue: u16, kick: &EventFd) -> io::Result<bool> {
        let _ = (queue, kick);
        Ok(false)
    }
}
