//! Sub-devices, device timers, and whether objects take destructor
//! callbacks.

use std::collections::HashMap;
use std::ffi::c_void;

use cl3::error_codes::{CL_INVALID_VALUE, CL_OUT_OF_RESOURCES, CL_SUCCESS};
use cl3::types::{
    cl_context, cl_device_id, cl_device_partition_property, cl_int, cl_mem, cl_program, cl_uint,
};
use protocol::limits::MAX_DEVICES;
use protocol::opencl::{
    CreateSubDevices, Empty, GetDeviceTimer, Handle, ObjectKind, SetDestructorCallback, SubDevices,
    Timer,
};

use super::handles::{invalid, native};
use super::OpenClExecutor;
use crate::executor::ExecError;

/// Partition properties and the values they take, all plain numbers:
/// `CL_DEVICE_PARTITION_EQUALLY` (a count), `..._BY_COUNTS` (a list of
/// counts ending in `CL_DEVICE_PARTITION_BY_COUNTS_LIST_END`), and
/// `..._BY_AFFINITY_DOMAIN` (a domain).
const PARTITION_EQUALLY: u64 = 0x1086;
const PARTITION_BY_COUNTS: u64 = 0x1087;
const PARTITION_BY_AFFINITY_DOMAIN: u64 = 0x1088;

/// A zero-terminated partition property list of known properties.
fn partition_ok(props: &[u64]) -> bool {
    match props {
        [PARTITION_EQUALLY | PARTITION_BY_AFFINITY_DOMAIN, _, 0] => true,
        [PARTITION_BY_COUNTS, rest @ ..] => {
            // Counts, the list end (0), then the property list's end (0).
            matches!(rest, [.., 0, 0]) && rest.len() >= 2
        }
        _ => false,
    }
}

/// Objects the runtime has been asked about destructor callbacks, and
/// what it answered: asked once per object, so a guest registering many
/// callbacks on one object costs the runtime one entry.
#[derive(Debug, Default)]
pub(super) struct CallbacksAsked(HashMap<Handle, cl_int>);

impl CallbacksAsked {
    /// Forgets an object the guest released.
    pub(super) fn forget(&mut self, h: Handle) {
        self.0.remove(&h);
    }
}

/// The callback the runtime calls: the guest's own runs in the guest.
extern "C" fn nothing_mem(_: cl_mem, _: *mut c_void) {}
/// As [`nothing_mem`], for programs.
unsafe extern "C" fn nothing_program(_: cl_program, _: *mut c_void) {}
/// As [`nothing_mem`], for contexts.
unsafe extern "C" fn nothing_context(_: cl_context, _: *mut c_void) {}

impl OpenClExecutor {
    pub(super) fn create_sub_devices(
        &mut self,
        req: CreateSubDevices,
    ) -> Result<SubDevices, ExecError> {
        let device = self.table.device(req.device)?;
        if !partition_ok(&req.properties) {
            return Err(native(CL_INVALID_VALUE));
        }
        let props: Vec<cl_device_partition_property> =
            req.properties.iter().map(|&v| v as _).collect();
        let runtime = cl3::load_library()
            .as_ref()
            .map_err(|_| native(CL_OUT_OF_RESOURCES))?;
        let mut count: cl_uint = 0;
        let status = runtime
            .clCreateSubDevices(
                device,
                props.as_ptr(),
                0,
                std::ptr::null_mut(),
                &raw mut count,
            )
            .ok_or(native(CL_OUT_OF_RESOURCES))?;
        if status != CL_SUCCESS {
            return Err(native(status));
        }
        if req.count_only {
            return Ok(SubDevices {
                count,
                handles: vec![],
            });
        }
        let n = count as usize;
        if n > MAX_DEVICES {
            return Err(native(CL_OUT_OF_RESOURCES));
        }
        self.table.check_new_daemon(n, self.limits.max_objects)?;
        let mut ids: Vec<cl_device_id> = vec![std::ptr::null_mut(); n];
        let status = runtime
            .clCreateSubDevices(
                device,
                props.as_ptr(),
                count,
                ids.as_mut_ptr(),
                std::ptr::null_mut(),
            )
            .ok_or(native(CL_OUT_OF_RESOURCES))?;
        if status != CL_SUCCESS {
            return Err(native(status));
        }
        let handles = ids
            .into_iter()
            .map(|id| self.table.insert_sub_device(id))
            .collect();
        Ok(SubDevices { count, handles })
    }

    pub(super) fn device_timer(&mut self, req: GetDeviceTimer) -> Result<Timer, ExecError> {
        let device = self.table.device(req.device)?;
        if req.host_only {
            let host = cl3::device::get_host_timer(device).map_err(native)?;
            return Ok(Timer { device: 0, host });
        }
        let [device, host] = cl3::device::get_device_and_host_timer(device).map_err(native)?;
        Ok(Timer { device, host })
    }

    pub(super) fn destructor_callback(
        &mut self,
        req: SetDestructorCallback,
    ) -> Result<Empty, ExecError> {
        let ask = match req.kind {
            ObjectKind::MemObject => {
                let m = self.table.mem(req.object)?.raw();
                // SAFETY: `m` is a live memory object of this session; the
                // callback ignores its arguments.
                Box::new(move || unsafe {
                    cl3::memory::set_mem_object_destructor_callback(
                        m,
                        nothing_mem,
                        std::ptr::null_mut(),
                    )
                }) as Box<dyn Fn() -> Result<(), cl_int>>
            }
            ObjectKind::Program => {
                let p = self.table.program(req.object)?.get();
                Box::new(move || {
                    let runtime = cl3::load_library()
                        .as_ref()
                        .map_err(|_| CL_OUT_OF_RESOURCES)?;
                    match runtime.clSetProgramReleaseCallback(
                        p,
                        Some(nothing_program),
                        std::ptr::null_mut(),
                    ) {
                        Some(CL_SUCCESS) => Ok(()),
                        Some(code) => Err(code),
                        None => Err(CL_OUT_OF_RESOURCES),
                    }
                })
            }
            ObjectKind::Context => {
                let c = self.table.context(req.object)?.get();
                Box::new(move || {
                    cl3::context::set_context_destructor_callback(
                        c,
                        Some(nothing_context),
                        std::ptr::null_mut(),
                    )
                })
            }
            kind => return Err(invalid(kind)),
        };
        let code = *self
            .callbacks_asked
            .0
            .entry(req.object)
            .or_insert_with(|| ask().err().unwrap_or(CL_SUCCESS));
        if code == CL_SUCCESS {
            Ok(Empty {})
        } else {
            Err(native(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lists_are_known_and_terminated() {
        assert!(partition_ok(&[PARTITION_EQUALLY, 1, 0]));
        assert!(partition_ok(&[PARTITION_BY_COUNTS, 1, 1, 0, 0]));
        assert!(partition_ok(&[PARTITION_BY_AFFINITY_DOMAIN, 1 << 5, 0]));
        assert!(!partition_ok(&[PARTITION_EQUALLY, 1]));
        assert!(!partition_ok(&[PARTITION_BY_COUNTS, 1, 1]));
        assert!(!partition_ok(&[PARTITION_BY_COUNTS, 0]));
        assert!(!partition_ok(&[0x4000, 1, 0]));
        assert!(!partition_ok(&[]));
    }
}
