//! One guest connection's session: the negotiated version and features, the
//! executor that owns every object the guest created, and counters.
//!
//! A session starts closed. `SessionOpen` (control queue) negotiates the
//! version and opens an executor; API requests before that get
//! [`ProtocolError::NoSession`]. `SessionClose`, a device reset, a second
//! `SessionOpen` and dropping the session (disconnect) all drop the executor,
//! and with it everything the guest made.

use std::sync::Arc;

use protocol::limits::{MAX_BODY_LEN, MAX_FRAMES_PER_CHAIN, MAX_TRANSFER_LEN};
use protocol::opencl::Empty;
use protocol::session::{negotiate_version, FEATURE_BATCH, KNOWN_FEATURES, PROTOCOL_VERSION};
use protocol::{Frame, Opcode, Outcome, ProtocolError, QueueClass, Request, Response, FLAG_ASYNC};
use protocol::{SessionOpen, SessionOpened};
use tracing::debug;

use crate::executor::{Abandon, AbandonSet, Bulk, ExecError, Executor, ExecutorFactory};
use crate::limits::SessionLimits;
use crate::log::{logged_name, WarnLimiter};
use crate::{limited_info, limited_warn};

/// What a session has done, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Chains completed (including rejected ones).
    pub chains: u64,
    /// Request frames answered.
    pub frames: u64,
    /// Frames answered with a protocol error, or chains rejected outright.
    pub protocol_errors: u64,
    /// Frames whose executor returned a native error code.
    pub native_errors: u64,
    /// Sessions opened over this connection's lifetime.
    pub opens: u64,
}

struct Open {
    version: u16,
    features: u64,
    executor: Box<dyn Executor>,
}

/// Per-connection state. Not shared between connections.
pub struct Session {
    factory: Arc<dyn ExecutorFactory>,
    limits: SessionLimits,
    open: Option<Open>,
    counters: Counters,
    warn: WarnLimiter,
    /// Session open and close lines, which a guest can repeat at will.
    lifecycle: WarnLimiter,
    /// The open executor's abandoner, for transports.
    abandon: Arc<AbandonSet>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("factory", &self.factory.name())
            .field("limits", &self.limits)
            .field("version", &self.version())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Session {
    /// A closed session that opens executors from `factory` with `limits`.
    pub fn new(factory: Arc<dyn ExecutorFactory>, limits: SessionLimits) -> Self {
        Session {
            factory,
            limits,
            open: None,
            counters: Counters::default(),
            warn: WarnLimiter::new(),
            lifecycle: WarnLimiter::new(),
            abandon: Arc::default(),
        }
    }

    /// What a transport calls, from any thread, when the guest is gone
    /// (or its device resets) while this session may be blocked in a wait
    /// only the guest could have ended. It stays valid across executors.
    pub fn abandoner(&self) -> Arc<dyn Abandon> {
        self.abandon.clone()
    }

    /// The negotiated version, or `None` while closed.
    pub fn version(&self) -> Option<u16> {
        self.open.as_ref().map(|o| o.version)
    }

    /// The granted feature bits, or `None` while closed.
    pub fn features(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.features)
    }

    /// True once `SessionOpen` succeeded and until it is closed.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub(crate) fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// The limiter for warnings this session's guest can trigger.
    pub(crate) fn warn_limiter(&mut self) -> &mut WarnLimiter {
        &mut self.warn
    }

    /// Drops the executor (device reset, disconnect, `SessionClose`).
    pub fn reset(&mut self) {
        let open = self.open.take();
        self.abandon.clear();
        if let Some(open) = open {
            limited_info!(
                self.lifecycle,
                executor = self.factory.name(),
                version = open.version,
                chains = self.counters.chains,
                frames = self.counters.frames,
                protocol_errors = self.counters.protocol_errors,
                "session closed"
            );
        }
    }

    /// Decodes and runs one request frame that arrived on `queue_class`'s
    /// queue, returning what its response must carry.
    pub fn handle_frame(
        &mut self,
        queue_class: QueueClass,
        frame: &Frame<'_>,
        bulk: &Bulk<'_>,
    ) -> Outcome {
        let h = &frame.header;
        let Some(op) = Opcode::from_u16(h.opcode) else {
            return Outcome::Protocol(ProtocolError::UnsupportedOpcode);
        };
        if op.queue_class() != queue_class {
            return Outcome::Protocol(ProtocolError::UnsupportedOpcode);
        }
        // SessionOpen carries its own version range in the body, so its header
        // is decoded at the sender's version; everything else must use the
        // negotiated one.
        let version = match (op, self.version()) {
            (Opcode::SessionOpen, _) | (Opcode::SessionClose, None) => h.version,
            (_, Some(v)) => v,
            (_, None) => return Outcome::Protocol(ProtocolError::NoSession),
        };
        let req = match protocol::decode_request(frame, version) {
            Ok(r) => r,
            Err((code, cause)) => {
                debug!(opcode = h.opcode, %cause, "request did not decode");
                return Outcome::Protocol(code);
            }
        };
        match req {
            Request::SessionOpen(open) => self.open(&open),
            Request::SessionClose(_) => {
                self.reset();
                Outcome::Ok(Response::SessionClose(Empty {}))
            }
            Request::Ping(_) => Outcome::Ok(Response::Ping(Empty {})),
            req => self.execute(req, bulk, h.flags & FLAG_ASYNC != 0),
        }
    }

    fn execute(&mut self, req: Request, bulk: &Bulk<'_>, posted: bool) -> Outcome {
        let Some(open) = self.open.as_mut() else {
            return Outcome::Protocol(ProtocolError::NoSession);
        };
        // An API family the session was not granted (not asked for, or not
        // served by this daemon's executor) never reaches the executor.
        let family = req.opcode().feature();
        if family & open.features != family {
            return Outcome::Protocol(ProtocolError::ApiUnavailable);
        }
        let _call = crate::hooks::call(req.opcode() as u16);
        let result = if posted {
            open.executor.execute_posted(req, bulk)
        } else {
            open.executor.execute(req, bulk)
        };
        match result {
            Ok(resp) => Outcome::Ok(resp),
            Err(ExecError::Native(code)) => {
                self.counters.native_errors += 1;
                Outcome::Native(code)
            }
            Err(ExecError::Protocol(e)) => Outcome::Protocol(e),
        }
    }

    fn open(&mut self, req: &SessionOpen) -> Outcome {
        // A second open replaces the first: a new guest program on the same
        // device must not see the previous one's objects.
        self.reset();
        let Some(version) = negotiate_version(req.min_version, req.max_version) else {
            limited_warn!(
                self.warn,
                client = %logged_name(&req.client),
                min = req.min_version,
                max = req.max_version,
                ours = PROTOCOL_VERSION,
                "guest protocol version range does not overlap ours"
            );
            return Outcome::Protocol(ProtocolError::VersionMismatch);
        };
        let executor = match self.factory.open(self.limits) {
            Ok(e) => e,
            Err(e) => {
                limited_warn!(self.warn, executor = self.factory.name(), error = %e, "cannot open an executor for a session");
                return Outcome::Protocol(ProtocolError::ApiUnavailable);
            }
        };
        let features = req.features & (self.factory.features() | FEATURE_BATCH) & KNOWN_FEATURES;
        if let Some(a) = executor.abandoner() {
            self.abandon.add(a);
        }
        self.open = Some(Open {
            version,
            features,
            executor,
        });
        self.counters.opens += 1;
        crate::hooks::session_opened(&req.client);
        limited_info!(
            self.lifecycle,
            client = %logged_name(&req.client),
            version,
            features = format_args!("{features:#x}"),
            executor = self.factory.name(),
            "session opened"
        );
        Outcome::Ok(Response::SessionOpen(SessionOpened {
            version,
            features,
            max_body_len: MAX_BODY_LEN as u32,
            max_transfer_len: MAX_TRANSFER_LEN,
            max_frames_per_chain: MAX_FRAMES_PER_CHAIN as u32,
        }))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reset();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use protocol::session::FEATURE_OPENCL;
    use protocol::{encode_request, FrameIter};

    use super::*;
    use crate::test_util::{capture_log, FakeFactory};

    #[test]
    fn a_guest_cannot_flood_or_forge_the_log_with_session_opens() {
        let forged = "x\nERROR forged line\u{1b}[2J".repeat(1000);
        let log = capture_log(|| {
            let mut s = Session::new(
                Arc::new(FakeFactory(Default::default())),
                crate::limits::session_limits(16, 0),
            );
            let open = Request::SessionOpen(SessionOpen {
                min_version: 1,
                max_version: PROTOCOL_VERSION,
                features: FEATURE_OPENCL,
                client: forged.clone(),
            });
            let mut area = Vec::new();
            encode_request(&mut area, 1, 0, &open, 0, 0).unwrap();
            let frame = FrameIter::new(&area).next().unwrap().unwrap();
            for _ in 0..1000 {
                let r = s.handle_frame(QueueClass::Control, &frame, &Bulk::default());
                assert!(matches!(r, Outcome::Ok(_)));
            }
        });
        let lines = log.lines().filter(|l| l.contains("session")).count();
        assert!(lines <= 40, "{lines} log lines for 1000 opens");
        assert!(
            !log.lines().any(|l| l.starts_with("ERROR forged")),
            "a guest's client name started a log line"
        );
        assert!(
            !log.contains('\u{1b}'),
            "an escape sequence reached the log"
        );
        assert!(log.len() < 64 << 10, "{} bytes of log", log.len());
    }
}
