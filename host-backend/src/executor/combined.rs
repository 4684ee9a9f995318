//! Several API families in one daemon: each session gets one executor per
//! family (CUDA, OpenCL), and every request goes to the executor of its
//! opcode's family.
//!
//! A GPU host usually has both the NVIDIA driver and an OpenCL ICD; with
//! `--executor auto` the daemon then serves CUDA and OpenCL guests alike. A
//! session's executor for a family is opened on the first request of that
//! family, so a CUDA-only program never opens the OpenCL runtime. The
//! per-session limits apply to each family's executor separately.

use std::sync::Arc;

use protocol::{ProtocolError, Request, Response};

use super::{Abandon, AbandonSet, Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use crate::limited_warn;
use crate::limits::SessionLimits;
use crate::log::WarnLimiter;

/// Opens one executor per family, on demand.
pub struct CombinedFactory {
    parts: Vec<Arc<dyn ExecutorFactory>>,
    name: &'static str,
}

impl std::fmt::Debug for CombinedFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CombinedFactory")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CombinedFactory {
    /// Combines factories that serve disjoint API families, under `name`
    /// (for logs).
    ///
    /// Fails with [`ExecutorError::OverlappingFamilies`] if two of them claim
    /// the same `FEATURE_*` bit, since a request could then go to either.
    pub fn new(
        parts: Vec<Arc<dyn ExecutorFactory>>,
        name: &'static str,
    ) -> Result<Self, ExecutorError> {
        let mut seen = 0u64;
        for p in &parts {
            if p.features() & seen != 0 {
                return Err(ExecutorError::OverlappingFamilies);
            }
            seen |= p.features();
        }
        Ok(CombinedFactory { parts, name })
    }
}

impl ExecutorFactory for CombinedFactory {
    fn name(&self) -> &'static str {
        self.name
    }

    fn features(&self) -> u64 {
        self.parts.iter().fold(0, |acc, p| acc | p.features())
    }

    fn open(&self, limits: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(CombinedExecutor {
            slots: self
                .parts
                .iter()
                .map(|factory| Slot {
                    factory: Arc::clone(factory),
                    executor: None,
                })
                .collect(),
            limits,
            abandon: Arc::default(),
            warn: WarnLimiter::new(),
        }))
    }
}

/// One family's factory and, once used, the session's executor for it.
struct Slot {
    factory: Arc<dyn ExecutorFactory>,
    executor: Option<Box<dyn Executor>>,
}

/// A session's executors, one per family, opened on first use.
struct CombinedExecutor {
    slots: Vec<Slot>,
    limits: SessionLimits,
    /// The abandoners of the executors opened so far.
    abandon: Arc<AbandonSet>,
    /// A family that cannot open is tried again on each of its requests.
    warn: WarnLimiter,
}

impl Executor for CombinedExecutor {
    fn execute(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.executor_for(&req)?.execute(req, bulk)
    }

    fn execute_posted(&mut self, req: Request, bulk: &Bulk<'_>) -> Result<Response, ExecError> {
        self.executor_for(&req)?.execute_posted(req, bulk)
    }

    fn abandoner(&self) -> Option<Arc<dyn Abandon>> {
        Some(self.abandon.clone())
    }
}

impl CombinedExecutor {
    /// The session's executor for `req`'s API family, opened on first use.
    fn executor_for(&mut self, req: &Request) -> Result<&mut Box<dyn Executor>, ExecError> {
        let family = req.opcode().feature();
        let unavailable = ExecError::Protocol(ProtocolError::ApiUnavailable);
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| family != 0 && s.factory.features() & family == family)
        else {
            return Err(unavailable);
        };
        let executor = match &mut slot.executor {
            Some(e) => e,
            empty => match slot.factory.open(self.limits) {
                Ok(e) => {
                    if let Some(a) = e.abandoner() {
                        self.abandon.add(a);
                    }
                    empty.insert(e)
                }
                Err(e) => {
                    limited_warn!(self.warn, executor = slot.factory.name(), error = %e, "cannot open an executor for a session");
                    return Err(unavailable);
                }
            },
        };
        Ok(executor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use protocol::cuda::Init;
    use protocol::opencl::Empty;
    use protocol::session::{FEATURE_CUDA, FEATURE_OPENCL};

    use super::*;
    use crate::executor::opencl::OpenClFactory;
    use crate::testing::RecordingCudaFactory;

    const LIMITS: SessionLimits = SessionLimits {
        max_objects: 100,
        max_device_memory: 0,
    };

    #[test]
    fn overlapping_families_are_refused() {
        let a: Arc<dyn ExecutorFactory> = Arc::new(RecordingCudaFactory::new());
        let b: Arc<dyn ExecutorFactory> = Arc::new(RecordingCudaFactory::new());
        assert!(matches!(
            CombinedFactory::new(vec![a, b], "x"),
            Err(ExecutorError::OverlappingFamilies)
        ));
    }

    #[test]
    fn each_family_reaches_its_own_executor() {
        let Ok(opencl) = OpenClFactory::new() else {
            println!("SKIPPED: no OpenCL platform (install pocl-opencl-icd)");
            return;
        };
        let cuda = RecordingCudaFactory::new();
        let recorder = cuda.recorder();
        let combined = CombinedFactory::new(vec![Arc::new(cuda), Arc::new(opencl)], "both")
            .expect("disjoint families");
        assert_eq!(combined.features(), FEATURE_CUDA | FEATURE_OPENCL);
        let mut ex = combined.open(LIMITS).expect("open");

        // An OpenCL request is answered by the real OpenCL runtime...
        match ex.execute(Request::ClGetPlatformIds(Empty {}), &Bulk::default()) {
            Ok(Response::ClGetPlatformIds(list)) => assert!(!list.handles.is_empty()),
            other => panic!("clGetPlatformIDs through the combined executor: {other:?}"),
        }
        assert!(
            recorder.calls().is_empty(),
            "an OpenCL request reached the CUDA executor"
        );
        // ...and a CUDA request by the CUDA one.
        match ex.execute(Request::CuInit(Init { flags: 0 }), &Bulk::default()) {
            Ok(Response::CuInit(_)) => {}
            other => panic!("cuInit through the combined executor: {other:?}"),
        }
        assert_eq!(recorder.calls().len(), 1, "cuInit was not recorded once");
    }

    #[test]
    fn a_family_that_cannot_open_does_not_flood_the_log() {
        struct Broken;
        impl ExecutorFactory for Broken {
            fn name(&self) -> &'static str {
                "broken"
            }
            fn features(&self) -> u64 {
                FEATURE_OPENCL
            }
            fn open(&self, _: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
                Err(ExecutorError::NoOpenClPlatform)
            }
        }
        let combined = CombinedFactory::new(vec![Arc::new(Broken)], "broken").unwrap();
        let mut ex = combined.open(LIMITS).expect("open");
        let log = crate::test_util::capture_log(|| {
            for _ in 0..1000 {
                assert_eq!(
                    ex.execute(Request::ClGetPlatformIds(Empty {}), &Bulk::default())
                        .err(),
                    Some(ExecError::Protocol(ProtocolError::ApiUnavailable))
                );
            }
        });
        let lines = log.lines().count();
        assert!(lines <= 20, "{lines} log lines for 1000 requests");
    }

    #[test]
    fn a_family_nobody_serves_is_unavailable() {
        let combined = CombinedFactory::new(vec![Arc::new(RecordingCudaFactory::new())], "cuda")
            .expect("one family");
        let mut ex = combined.open(LIMITS).expect("open");
        assert_eq!(
            ex.execute(Request::ClGetPlatformIds(Empty {}), &Bulk::default())
                .err(),
            Some(ExecError::Protocol(ProtocolError::ApiUnavailable))
        );
    }
}
