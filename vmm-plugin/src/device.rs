//! The virtio-compute MMIO device a VMM puts on its bus: the register
//! model in front, the daemon connection behind, the event loop beside
//! (interrupts, hang-up, reconnect).
//!
//! The vCPU path ([`ComputeDevice::read`], [`ComputeDevice::write`]) never
//! waits for the daemon to come back: it talks only to the connection it
//! has (each request bounded by the socket timeout), and a device without
//! one asks the driver for a reset.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::connection::{ConnError, Connection};
use crate::event_loop::EventLoop;
use crate::host::{InterruptCause, VmmHost};
use crate::mmio::{Effect, MmioRegs};
use crate::spec::{
    status, DeviceConfig, DEVICE_FEATURES, FEATURE_CONFIG, FEATURE_VERSION_1, NUM_QUEUES,
};

/// Why the device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An eventfd or the event loop's epoll could not be made.
    #[error("cannot create the device's event sources")]
    Events(#[source] std::io::Error),
    /// The VMM refused to register a queue's notify eventfd.
    #[error("cannot register the notify eventfd of queue {0}")]
    Notify(u16, #[source] std::io::Error),
    /// The event loop thread did not start.
    #[error("cannot start the device's event thread")]
    Thread(#[source] std::io::Error),
}

/// Choices a VMM makes when it creates the device.
#[derive(Clone, Copy, Debug)]
pub struct DeviceOptions {
    /// The config space served when the daemon has none of its own (an
    /// older daemon, or one without `VHOST_USER_PROTOCOL_F_CONFIG`).
    pub fallback_config: DeviceConfig,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            fallback_config: DeviceConfig::CARRIER,
        }
    }
}

/// What the vCPU path and the event loop share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) host: Arc<dyn VmmHost>,
    pub(crate) socket: PathBuf,
    pub(crate) state: Mutex<State>,
    pub(crate) kicks: [EventFd; NUM_QUEUES],
    pub(crate) calls: [EventFd; NUM_QUEUES],
    /// Which kicks the VMM wired as ioeventfds.
    ioevent: [bool; NUM_QUEUES],
    /// Wakes the event loop: the connection changed.
    pub(crate) wake: EventFd,
    /// Stops the event loop.
    pub(crate) stop: EventFd,
    fallback_config: DeviceConfig,
}

impl std::fmt::Debug for dyn VmmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VmmHost")
    }
}

/// The mutable device state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) regs: MmioRegs,
    pub(crate) conn: Option<Connection>,
    /// Bumped whenever `conn` is replaced or dropped.
    pub(crate) conn_gen: u64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the registers
        // inconsistent beyond what a reset repairs; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The features to offer with `conn` (or without one).
    fn offer(conn: Option<&Connection>) -> u64 {
        match conn {
            Some(c) => (c.features() & DEVICE_FEATURES) | FEATURE_VERSION_1 | FEATURE_CONFIG,
            None => FEATURE_VERSION_1 | FEATURE_CONFIG,
        }
    }

    fn config_of(&self, conn: Option<&Connection>) -> DeviceConfig {
        conn.and_then(Connection::config)
            .unwrap_or(self.fallback_config)
    }

    /// Installs a new connection; returns whether the driver must be told
    /// (it is waiting for a reset and now can usefully make one).
    pub(crate) fn install(&self, st: &mut State, conn: Connection) -> bool {
        let config = self.config_of(Some(&conn)).encode();
        if st.regs.status == 0 {
            st.regs.device_features = Self::offer(Some(&conn));
        }
        st.regs.set_config(config);
        st.conn = Some(conn);
        st.conn_gen += 1;
        if st.regs.status & status::DEVICE_NEEDS_RESET != 0
            && st.regs.status & status::DRIVER_OK != 0
        {
            st.regs.interrupt_status |= crate::spec::interrupt::CONFIG_CHANGE;
            return true;
        }
        false
    }

    /// Drops a broken connection and marks the device as needing a reset;
    /// returns whether to raise a config-change interrupt.
    pub(crate) fn lose(&self, st: &mut State) -> bool {
        st.conn = None;
        st.conn_gen += 1;
        let _ = self.wake.write(1);
        st.regs.needs_reset()
    }

    fn conn_failed(&self, st: &mut State, e: &ConnError) -> bool {
        if e.is_fatal() {
            self.lose(st)
        } else {
            st.regs.needs_reset()
        }
    }
}

/// The device. Put it on the MMIO bus at a window of
/// [`crate::spec::MMIO_LEN`] bytes; route reads and writes there to
/// [`ComputeDevice::read`] and [`ComputeDevice::write`].
#[derive(Debug)]
pub struct ComputeDevice {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ComputeDevice {
    /// A device whose daemon listens at `socket`. It connects in the
    /// background (and again whenever the daemon goes away); until then a
    /// driver that sets `DRIVER_OK` is asked to reset.
    pub fn new(
        socket: impl AsRef<Path>,
        host: Arc<dyn VmmHost>,
        options: DeviceOptions,
    ) -> Result<Self, DeviceError> {
        let efd = || EventFd::new(EFD_NONBLOCK).map_err(DeviceError::Events);
        let kicks = [efd()?, efd()?];
        let calls = [efd()?, efd()?];
        let mut ioevent = [false; NUM_QUEUES];
        for (q, kick) in kicks.iter().enumerate() {
            ioevent[q] = host
                .register_notify(q as u16, kick)
                .map_err(|e| DeviceError::Notify(q as u16, e))?;
        }
        let config = options.fallback_config.encode();
        let shared = Arc::new(Shared {
            host,
            socket: socket.as_ref().to_path_buf(),
            state: Mutex::new(State {
                regs: MmioRegs::new(Shared::offer(None), config),
                conn: None,
                conn_gen: 0,
            }),
            kicks,
            calls,
            ioevent,
            wake: efd()?,
            stop: efd()?,
            fallback_config: options.fallback_config,
        });
        let lp = EventLoop::new(shared.clone()).map_err(DeviceError::Events)?;
        let thread = std::thread::Builder::new()
            .name("vcompute-mmio".into())
            .spawn(move || lp.run())
            .map_err(DeviceError::Thread)?;
        Ok(ComputeDevice {
            shared,
            thread: Some(thread),
        })
    }

    /// Whether the device holds a connection to the daemon now.
    pub fn connected(&self) -> bool {
        self.shared.lock().conn.is_some()
    }

    /// An MMIO read at `offset` into the device's window.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        self.shared.lock().regs.read(offset, data);
    }

    /// An MMIO write at `offset` into the device's window.
    pub fn write(&self, offset: u64, data: &[u8]) {
        let sh = &self.shared;
        let mut st = sh.lock();
        let effect = st.regs.write(offset, data, || sh.host.memory());
        let tell = match effect {
            Effect::None => false,
            Effect::Notify(q) => {
                let q = usize::from(q);
                if !sh.ioevent[q] {
                    // A full eventfd counter means a kick is pending anyway.
                    let _ = sh.kicks[q].write(1);
                }
                false
            }
            Effect::Reset => {
                let result = st.conn.as_mut().map(Connection::reset);
                if let Some(Err(e)) = result {
                    if e.is_fatal() {
                        sh.lose(&mut st);
                    }
                }
                // Drain stale notifications of the old rings.
                for fd in sh.calls.iter().chain(&sh.kicks) {
                    let _ = fd.read();
                }
                let offer = Shared::offer(st.conn.as_ref());
                st.regs.device_features = offer;
                let config = sh.config_of(st.conn.as_ref()).encode();
                st.regs.set_config(config);
                false
            }
            Effect::Activate => self.activate(&mut st, &sh.host.memory()),
        };
        drop(st);
        if tell {
            sh.host.signal(InterruptCause::ConfigChange);
        }
    }

    /// Starts the daemon's side; on failure the device needs a reset.
    fn activate(&self, st: &mut State, mem: &vm_memory::GuestMemoryMmap) -> bool {
        let sh = &self.shared;
        let State { regs, conn, .. } = st;
        let Some(c) = conn.as_mut() else {
            return regs.needs_reset();
        };
        // The connection may have changed since the offer was made.
        if regs.driver_features & !Shared::offer(Some(c)) != 0 {
            return regs.needs_reset();
        }
        match c.activate(
            mem,
            regs.driver_features,
            &regs.queues,
            &sh.kicks,
            &sh.calls,
        ) {
            Ok(()) => false,
            Err(e) => sh.conn_failed(st, &e),
        }
    }
}

impl Drop for ComputeDevice {
    fn drop(&mut self) {
        let _ = self.shared.stop.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
