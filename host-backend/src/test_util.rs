//! Test doubles shared by the unit tests of chains and streams: a fake
//! executor that writes `out` into every out-bulk segment, records what it
//! was asked to run, answers `ClFinish` with success and anything else with
//! native error -30.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use protocol::opencl::Empty;
use protocol::session::FEATURE_OPENCL;
use protocol::{Request, Response};

use crate::executor::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory, SessionLimits};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub req: Request,
    pub input: Vec<Vec<u8>>,
    pub output_lens: Vec<usize>,
}

pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

pub(crate) struct FakeFactory(pub Log);
pub(crate) struct FakeExecutor(pub Log);

impl Executor for FakeExecutor {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        for b in bulk.output {
            assert!(b.write(b"out"));
        }
        self.0.lock().unwrap().push(Seen {
            req: req.clone(),
            input: bulk.input.iter().map(|b| b.to_vec()).collect(),
            output_lens: bulk.output.iter().map(|b| b.len()).collect(),
        });
        match req {
            Request::ClFinish(_) => Ok(Response::ClFinish(Empty {})),
            _ => Err(ExecError::Native(-30)),
        }
    }
}

impl ExecutorFactory for FakeFactory {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn features(&self) -> u64 {
        FEATURE_OPENCL
    }
    fn open(&self, _: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(FakeExecutor(self.0.clone())))
    }
}
