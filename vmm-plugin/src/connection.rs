//! One vhost-user connection to the daemon: the handshake when it opens,
//! the device start when the driver sets `DRIVER_OK` (memory table,
//! features, rings, eventfds), and the device reset.
//!
//! Every socket operation is bounded by [`IO_TIMEOUT`], so a daemon that
//! stops answering costs a vCPU that long once, never a hang: the error
//! marks the connection broken and the device asks for a reset.

use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserHeaderFlag, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::queue::QueueState;
use crate::spec::{DeviceConfig, CONFIG_LEN, NUM_QUEUES, QUEUE_SIZE};

/// Longest a single request to the daemon may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The vhost-user protocol features the device uses when offered.
const WANTED_PROTOCOL: VhostUserProtocolFeatures = VhostUserProtocolFeatures::MQ
    .union(VhostUserProtocolFeatures::REPLY_ACK)
    .union(VhostUserProtocolFeatures::CONFIG)
    .union(VhostUserProtocolFeatures::RESET_DEVICE);

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The socket could not be opened or configured.
    #[error("cannot connect to the daemon")]
    Connect(#[source] std::io::Error),
    /// A vhost-user request failed (the daemon refused it, or the socket
    /// broke or timed out).
    #[error("vhost-user request {0} failed")]
    Request(&'static str, #[source] vhost::Error),
    /// The daemon does not speak the protocol the device needs.
    #[error("the daemon lacks {0}")]
    Missing(&'static str),
    /// The daemon serves fewer queues than the device has.
    #[error("the daemon serves {0} queues, the device needs {NUM_QUEUES}")]
    Queues(u64),
    /// A guest memory region has no file behind it the daemon could map.
    #[error("guest memory at {0:#x} is not backed by a shareable file")]
    Unshareable(u64),
    /// A ring address has no host mapping.
    #[error("ring address {0:#x} is not in guest memory")]
    RingAddress(u64),
}

fn req<T>(what: &'static str, r: vhost::Result<T>) -> Result<T, ConnError> {
    r.map_err(|e| ConnError::Request(what, e))
}

/// An open, handshaken connection.
pub struct Connection {
    frontend: Frontend,
    /// A second handle on the socket, watched for hang-up.
    watch: UnixStream,
    /// The daemon's virtio features.
    features: u64,
    /// The protocol features both sides use.
    protocol: VhostUserProtocolFeatures,
    /// The daemon's config space, when it serves one.
    config: Option<DeviceConfig>,
    /// Queues started since the last reset.
    started: [bool; NUM_QUEUES],
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("features", &format_args!("{:#x}", self.features))
            .field("protocol", &self.protocol)
            .field("config", &self.config)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the daemon at `path` and runs the handshake: owner,
    /// features, protocol features, queue count, config space.
    pub fn open(path: &Path) -> Result<Self, ConnError> {
        let stream = UnixStream::connect(path).map_err(ConnError::Connect)?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(ConnError::Connect)?;
        let watch = stream.try_clone().map_err(ConnError::Connect)?;
        let mut frontend = Frontend::from_stream(stream, NUM_QUEUES as u64);
        req("SET_OWNER", frontend.set_owner())?;
        let features = req("GET_FEATURES", frontend.get_features())?;
        if features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() == 0 {
            return Err(ConnError::Missing("VHOST_USER_F_PROTOCOL_FEATURES"));
        }
        let offered = req("GET_PROTOCOL_FEATURES", frontend.get_protocol_features())?;
        let protocol = offered & WANTED_PROTOCOL;
        if !protocol.contains(VhostUserProtocolFeatures::MQ) {
            return Err(ConnError::Missing("VHOST_USER_PROTOCOL_F_MQ"));
        }
        req(
            "SET_PROTOCOL_FEATURES",
            frontend.set_protocol_features(protocol),
        )?;
        if protocol.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            // Every request that has no reply of its own is acknowledged,
            // so a refusal surfaces here instead of as a silent device.
            frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        let queues = req("GET_QUEUE_NUM", frontend.get_queue_num())?;
        if queues < NUM_QUEUES as u64 {
            return Err(ConnError::Queues(queues));
        }
        let config = if protocol.contains(VhostUserProtocolFeatures::CONFIG) {
            let (_, bytes) = req(
                "GET_CONFIG",
                frontend.get_config(
                    0,
                    CONFIG_LEN as u32,
                    VhostUserConfigFlags::empty(),
                    &[0; CONFIG_LEN],
                ),
            )?;
            DeviceConfig::decode(&bytes).ok()
        } else {
            None
        };
        Ok(Connection {
            frontend,
            watch,
            features,
            protocol,
            config,
            started: [false; NUM_QUEUES],
        })
    }

    /// The daemon's virtio features (without the vhost-user bit).
    pub fn features(&self) -> u64 {
        self.features & !VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    /// The config space the daemon reported, if it serves one.
    pub fn config(&self) -> Option<DeviceConfig> {
        self.config
    }

    /// The socket, for watching for hang-up.
    pub fn watch_fd(&self) -> RawFd {
        self.watch.as_raw_fd()
    }

    /// Starts the device: features, memory table, then every ready queue.
    /// `kicks` and `calls` are indexed by queue.
    pub fn activate(
        &mut self,
        mem: &GuestMemoryMmap,
        driver_features: u64,
        queues: &[QueueState; NUM_QUEUES],
        kicks: &[EventFd; NUM_QUEUES],
        calls: &[EventFd; NUM_QUEUES],
    ) -> Result<(), ConnError> {
        let acked =
            (driver_features & self.features) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        req("SET_FEATURES", self.frontend.set_features(acked))?;
        let mut regions = Vec::new();
        for r in mem.iter() {
            let info = VhostUserMemoryRegionInfo::from_guest_region(r)
                .map_err(|_| ConnError::Unshareable(r.start_addr().0))?;
            regions.push(info);
        }
        req("SET_MEM_TABLE", self.frontend.set_mem_table(&regions))?;
        let host = |gpa: u64| {
            mem.get_host_address(GuestAddress(gpa))
                .map(|p| p as u64)
                .map_err(|_| ConnError::RingAddress(gpa))
        };
        for (q, state) in queues.iter().enumerate() {
            if !state.ready {
                continue;
            }
            req("SET_VRING_NUM", self.frontend.set_vring_num(q, state.size))?;
            let cfg = VringConfigData {
                queue_max_size: QUEUE_SIZE,
                queue_size: state.size,
                flags: 0,
                desc_table_addr: host(state.desc.addr)?,
                used_ring_addr: host(state.used.addr)?,
                avail_ring_addr: host(state.avail.addr)?,
                log_addr: None,
            };
            req("SET_VRING_ADDR", self.frontend.set_vring_addr(q, &cfg))?;
            req("SET_VRING_BASE", self.frontend.set_vring_base(q, 0))?;
            req("SET_VRING_CALL", self.frontend.set_vring_call(q, &calls[q]))?;
            req("SET_VRING_KICK", self.frontend.set_vring_kick(q, &kicks[q]))?;
            req("SET_VRING_ENABLE", self.frontend.set_vring_enable(q, true))?;
            self.started[q] = true;
        }
        Ok(())
    }

    /// Resets the device in the daemon: stops every started queue with
    /// `GET_VRING_BASE` (as a frontend stopping a device does), then
    /// `RESET_DEVICE` when the daemon has it, so the queues come back
    /// through the daemon's first-start path.
    pub fn reset(&mut self) -> Result<(), ConnError> {
        for q in 0..NUM_QUEUES {
            if self.started[q] {
                req("GET_VRING_BASE", self.frontend.get_vring_base(q))?;
                self.started[q] = false;
            }
        }
        if self
            .protocol
            .contains(VhostUserProtocolFeatures::RESET_DEVICE)
        {
            req("RESET_DEVICE", self.frontend.reset_device())?;
        }
        Ok(())
    }
}

impl ConnError {
    /// Whether the socket itself failed (broke, timed out, lost sync), so
    /// the connection is of no further use; a refusal by a live daemon is
    /// not.
    pub fn is_fatal(&self) -> bool {
        use vhost::vhost_user::Error as E;
        match self {
            ConnError::Connect(_) => true,
            ConnError::Request(_, vhost::Error::VhostUserProtocol(e)) => matches!(
                e,
                E::PartialMessage
                    | E::Disconnected
                    | E::SocketError(_)
                    | E::SocketBroken(_)
                    | E::SocketRetry(_)
                    | E::InvalidMessage
            ),
            _ => false,
        }
    }
}
