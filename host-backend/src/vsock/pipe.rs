//! The byte pipe between the device thread and one connection's session
//! thread.
//!
//! The device side pushes the guest's bytes in and takes the session's
//! bytes out, never blocking. The session side ([`SessionEnd`]) is a
//! blocking `Read + Write`, so the session runs [`crate::stream::serve`]
//! exactly as it does on a unix socket. Every change the device must act
//! on (bytes to send, credit freed, the session ended) wakes it through an
//! eventfd.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use vmm_sys_util::eventfd::EventFd;

/// Session output the pipe holds before the session's writes block: enough
/// for a few maximal vsock packets, small enough to bound memory per
/// connection.
pub const OUT_CAP: usize = 1 << 20;

#[derive(Debug, Default)]
struct State {
    /// Guest bytes not yet read by the session.
    inbound: VecDeque<u8>,
    /// Session bytes not yet sent to the guest.
    outbound: VecDeque<u8>,
    /// Bytes the session has read in total (the vsock `fwd_cnt`).
    consumed: u32,
    /// The guest will send nothing more (shutdown, reset, VM gone).
    guest_closed: bool,
    /// Nobody will take the session's output any more (reset, VM gone).
    output_closed: bool,
    /// The session has ended and freed everything it held.
    session_done: bool,
}

/// One connection's pipe, shared by both sides.
#[derive(Debug)]
pub struct Pipe {
    state: Mutex<State>,
    cv: Condvar,
    wake: Arc<EventFd>,
}

impl Pipe {
    /// A pipe whose session side wakes the device through `wake`.
    pub fn new(wake: Arc<EventFd>) -> Arc<Self> {
        Arc::new(Pipe {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            wake,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_device(&self) {
        // A failed write means the counter is saturated: the device is
        // already due to wake.
        let _ = self.wake.write(1);
    }

    /// Device side: appends guest bytes for the session.
    pub fn push_inbound(&self, data: &[u8]) {
        self.lock().inbound.extend(data);
        self.cv.notify_all();
    }

    /// Device side: guest bytes waiting to be read by the session.
    pub fn inbound_len(&self) -> usize {
        self.lock().inbound.len()
    }

    /// Device side: the session's total consumption (`fwd_cnt`).
    pub fn consumed(&self) -> u32 {
        self.lock().consumed
    }

    /// Device side: takes up to `max` bytes of session output.
    pub fn take_outbound(&self, max: usize) -> Vec<u8> {
        let mut s = self.lock();
        let n = max.min(s.outbound.len());
        let out: Vec<u8> = s.outbound.drain(..n).collect();
        drop(s);
        if n > 0 {
            self.cv.notify_all();
        }
        out
    }

    /// Device side: session output waiting to be sent.
    pub fn outbound_len(&self) -> usize {
        self.lock().outbound.len()
    }

    /// Session side: the session has ended (and been dropped); wakes the
    /// device so that it can close the connection.
    pub fn finish_session(&self) {
        self.lock().session_done = true;
        self.wake_device();
    }

    /// Device side: true once [`Pipe::finish_session`] was called.
    pub fn session_done(&self) -> bool {
        self.lock().session_done
    }

    /// Device side: the guest sends no more; the session reads the rest
    /// and then sees end of stream.
    pub fn close_inbound(&self) {
        self.lock().guest_closed = true;
        self.cv.notify_all();
    }

    /// Device side: the connection is gone both ways; pending bytes are
    /// dropped and the session's next read or write fails.
    pub fn close_all(&self) {
        let mut s = self.lock();
        s.guest_closed = true;
        s.output_closed = true;
        s.inbound.clear();
        s.outbound.clear();
        drop(s);
        self.cv.notify_all();
    }
}

/// The session thread's end of a [`Pipe`].
#[derive(Debug)]
pub struct SessionEnd(pub Arc<Pipe>);

impl Read for SessionEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pipe = &self.0;
        let mut s = pipe.lock();
        while s.inbound.is_empty() && !s.guest_closed {
            s = pipe.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        let n = buf.len().min(s.inbound.len());
        for (dst, src) in buf.iter_mut().zip(s.inbound.drain(..n)) {
            *dst = src;
        }
        s.consumed = s.consumed.wrapping_add(n as u32);
        drop(s);
        if n > 0 {
            // Freed receive space: the device may owe the guest credit.
            pipe.wake_device();
        }
        Ok(n)
    }
}

impl Write for SessionEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pipe = &self.0;
        let mut s = pipe.lock();
        while s.outbound.len() >= OUT_CAP && !s.output_closed {
            s = pipe.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.output_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(OUT_CAP - s.outbound.len());
        s.outbound.extend(buf.get(..n).unwrap_or_default());
        drop(s);
        pipe.wake_device();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pipe() -> Arc<Pipe> {
        Pipe::new(Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap()))
    }

    #[test]
    fn bytes_flow_both_ways_and_count_consumption() {
        let p = pipe();
        let mut end = SessionEnd(p.clone());
        p.push_inbound(b"hello");
        let mut buf = [0u8; 3];
        assert_eq!(end.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(p.consumed(), 3);
        assert_eq!(p.inbound_len(), 2);
        assert_eq!(p.wake.read().unwrap(), 1, "reading woke the device");
        end.write_all(b"reply").unwrap();
        assert_eq!(p.take_outbound(3), b"rep");
        assert_eq!(p.take_outbound(10), b"ly");
    }

    #[test]
    fn closing_ends_reads_and_fails_writes() {
        let p = pipe();
        let mut end = SessionEnd(p.clone());
        p.push_inbound(b"x");
        p.close_inbound();
        let mut buf = [0u8; 4];
        assert_eq!(end.read(&mut buf).unwrap(), 1, "buffered bytes first");
        assert_eq!(end.read(&mut buf).unwrap(), 0, "then end of stream");
        p.close_all();
        assert_eq!(
            end.write(b"y").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn a_blocked_writer_resumes_when_the_device_drains() {
        let p = pipe();
        let mut end = SessionEnd(p.clone());
        let big = vec![7u8; OUT_CAP + 10];
        let writer = std::thread::spawn(move || end.write_all(&big).map(|()| end));
        let mut got = 0;
        while got < OUT_CAP + 10 {
            got += p.take_outbound(4096).len();
            std::thread::yield_now();
        }
        writer.join().unwrap().unwrap();
        assert_eq!(p.outbound_len(), 0);
    }
}
