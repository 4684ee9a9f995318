//! The device's own thread: turns the daemon's call eventfds into
//! used-buffer interrupts, notices when the daemon's socket hangs up, and
//! reconnects with a bounded backoff, so none of this runs on a vCPU.

use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::connection::Connection;
use crate::device::Shared;
use crate::host::InterruptCause;
use crate::spec::{interrupt, NUM_QUEUES};

/// First wait before a reconnect attempt.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between reconnect attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

const TOKEN_STOP: u64 = 0;
const TOKEN_WAKE: u64 = 1;
const TOKEN_SOCKET: u64 = 2;
const TOKEN_CALL: u64 = 3;

pub(crate) struct EventLoop {
    shared: Arc<Shared>,
    epoll: Epoll,
    /// The socket being watched, and the connection generation it is of.
    watched: Option<RawFd>,
    gen: Option<u64>,
    backoff: Duration,
}

impl EventLoop {
    pub(crate) fn new(shared: Arc<Shared>) -> std::io::Result<Self> {
        let epoll = Epoll::new()?;
        let add = |fd: RawFd, token: u64| {
            epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, token),
            )
        };
        add(shared.stop.as_raw_fd(), TOKEN_STOP)?;
        add(shared.wake.as_raw_fd(), TOKEN_WAKE)?;
        for (q, call) in shared.calls.iter().enumerate() {
            add(call.as_raw_fd(), TOKEN_CALL + q as u64)?;
        }
        Ok(EventLoop {
            shared,
            epoll,
            watched: None,
            gen: None,
            backoff: Duration::ZERO,
        })
    }

    pub(crate) fn run(mut self) {
        let mut events = [EpollEvent::default(); 8];
        loop {
            let connected = self.sync_watch();
            let timeout = if connected {
                -1
            } else {
                i32::try_from(self.backoff.as_millis()).unwrap_or(i32::MAX)
            };
            let n = match self.epoll.wait(timeout, &mut events) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    std::thread::sleep(BACKOFF_MIN);
                    continue;
                }
            };
            if n == 0 && !connected {
                self.reconnect();
                continue;
            }
            for ev in events.iter().take(n) {
                match ev.data() {
                    TOKEN_STOP => return,
                    TOKEN_WAKE => {
                        let _ = self.shared.wake.read();
                    }
                    TOKEN_SOCKET => self.hang_up(),
                    t => self.used(t.saturating_sub(TOKEN_CALL) as usize),
                }
            }
        }
    }

    /// Watches the current connection's socket; returns whether there is
    /// one.
    fn sync_watch(&mut self) -> bool {
        let st = self.shared.lock();
        if self.gen == Some(st.conn_gen) {
            return st.conn.is_some();
        }
        if let Some(fd) = self.watched.take() {
            // Already gone from the set if the socket was closed.
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
        }
        self.gen = Some(st.conn_gen);
        let Some(conn) = st.conn.as_ref() else {
            return false;
        };
        let fd = conn.watch_fd();
        let ev = EpollEvent::new(EventSet::READ_HANG_UP | EventSet::HANG_UP, TOKEN_SOCKET);
        if self.epoll.ctl(ControlOperation::Add, fd, ev).is_ok() {
            self.watched = Some(fd);
        }
        self.backoff = Duration::ZERO;
        true
    }

    /// The daemon went away: the driver must reset.
    fn hang_up(&mut self) {
        let tell = {
            let mut st = self.shared.lock();
            if self.gen != Some(st.conn_gen) {
                return;
            }
            self.shared.lose(&mut st)
        };
        if tell {
            self.shared.host.signal(InterruptCause::ConfigChange);
        }
        self.backoff = BACKOFF_MIN;
    }

    /// One reconnect attempt, outside the device lock.
    fn reconnect(&mut self) {
        match Connection::open(&self.shared.socket) {
            Ok(conn) => {
                let tell = {
                    let mut st = self.shared.lock();
                    if st.conn.is_some() {
                        return;
                    }
                    self.shared.install(&mut st, conn)
                };
                if tell {
                    self.shared.host.signal(InterruptCause::ConfigChange);
                }
            }
            Err(_) => {
                self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
            }
        }
    }

    /// A call eventfd fired: a used-buffer interrupt, if the driver is up.
    fn used(&mut self, q: usize) {
        if q >= NUM_QUEUES {
            return;
        }
        let _ = self.shared.calls[q].read();
        let tell = {
            let mut st = self.shared.lock();
            if st.regs.live() {
                st.regs.interrupt_status |= interrupt::USED_BUFFER;
                true
            } else {
                false
            }
        };
        if tell {
            self.shared.host.signal(InterruptCause::UsedBuffer);
        }
    }
}
