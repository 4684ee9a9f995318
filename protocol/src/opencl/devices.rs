//! Sub-devices, device timers and destructor callbacks.

use bincode::{Decode, Encode};

use super::{check_list, Handle, ObjectKind, Validate};
use crate::error::DecodeError;
use crate::limits::MAX_PROPERTIES;

/// `clCreateSubDevices`. Sub-devices get handles from the daemon, as
/// devices do.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CreateSubDevices {
    /// The device partitioned.
    pub device: Handle,
    /// `cl_device_partition_property` list, zero-terminated.
    pub properties: Vec<u64>,
    /// Only count the sub-devices (`out_devices` is NULL): none is made.
    pub count_only: bool,
}

/// The partition: how many sub-devices it makes, and their handles
/// (none when only counted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct SubDevices {
    /// `num_devices_ret`.
    pub count: u32,
    /// The new sub-devices, each with one reference.
    pub handles: Vec<Handle>,
}

/// `clGetDeviceAndHostTimer` / `clGetHostTimer`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct GetDeviceTimer {
    /// Device handle.
    pub device: Handle,
    /// `clGetHostTimer`: the host timer alone.
    pub host_only: bool,
}

/// Timer values in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Timer {
    /// The device timer (0 for `clGetHostTimer`).
    pub device: u64,
    /// The host timer.
    pub host: u64,
}

/// `clSetMemObjectDestructorCallback`, `clSetProgramReleaseCallback`,
/// `clSetContextDestructorCallback`: the shim keeps the program's
/// function and calls it; the daemon asks the runtime whether the object
/// takes such a callback at all, and answers its code.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SetDestructorCallback {
    /// `MemObject`, `Program` or `Context`.
    pub kind: ObjectKind,
    /// The object.
    pub object: Handle,
}

impl Validate for CreateSubDevices {
    fn validate(&self) -> Result<(), DecodeError> {
        check_list(
            self.properties.len(),
            MAX_PROPERTIES,
            "partition properties",
        )
    }
}
impl Validate for GetDeviceTimer {}
impl Validate for SetDestructorCallback {}
