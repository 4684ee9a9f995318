//! What every API's device offers the workloads, whatever the API.

use crate::ipc::RuntimeInfo;

/// The device an API backend drives.
pub(crate) trait Device {
    /// What the runtime reports about itself.
    fn info(&self) -> &RuntimeInfo;
}
