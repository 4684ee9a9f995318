//! A stream connection's bytes as the daemon serves them (a unix-socket
//! client, or a guest's vsock connection): records read, checked and run
//! through a session's dispatch, responses assembled. Never panics; the
//! session runs over an executor that writes every out-bulk segment and
//! refuses the request.
#![no_main]
use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vcompute_protocol::session::FEATURE_OPENCL;
use vcompute_protocol::{Request, Response};
use vhost_device_compute::executor::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use vhost_device_compute::limits::session_limits;
use vhost_device_compute::limits::SessionLimits;
use vhost_device_compute::session::Session;
use vhost_device_compute::stream::serve;

struct Refuse;
impl Executor for Refuse {
    fn execute(&mut self, _: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        for b in bulk.output {
            b.write_at(0, b"out");
        }
        Err(ExecError::Native(-30))
    }
}
struct Factory;
impl ExecutorFactory for Factory {
    fn name(&self) -> &'static str {
        "refuse"
    }
    fn features(&self) -> u64 {
        FEATURE_OPENCL
    }
    fn open(&self, _: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(Refuse))
    }
}

/// The guest's bytes in, the daemon's replies counted.
struct Conn<'a> {
    input: Cursor<&'a [u8]>,
    written: usize,
}
impl Read for Conn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}
impl Write for Conn<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut session = Session::new(Arc::new(Factory), session_limits(16, 1 << 20));
    let mut conn = Conn {
        input: Cursor::new(data),
        written: 0,
    };
    let _ = serve(&mut conn, &mut session);
});
