//! Pull progress events, per layer, for the CLI's progress bars: a
//! callback receives each state change and, while downloading, the bytes
//! done so far (one event per received chunk; throttle in the consumer).

use std::fmt;
use std::sync::Arc;

use crate::digest::Digest;

/// Where a layer is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Queued behind the parallel download limit.
    Waiting,
    /// Bytes arriving (`done` of `total`).
    Downloading,
    /// The blob was already in the store (or another pull just fetched it).
    AlreadyPresent,
    /// Downloaded, verified (size and sha256) and committed.
    Verified,
    /// Being unpacked (or waiting for a concurrent unpack of it).
    Unpacking,
    /// Unpacked and ready.
    Done,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    /// The layer blob.
    pub digest: Digest,
    /// Its new state.
    pub state: LayerState,
    /// Bytes downloaded so far.
    pub done: u64,
    /// The blob's size.
    pub total: u64,
}

/// A progress callback (cheap to clone; called from several tasks).
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Fn(&LayerProgress) + Send + Sync>);

impl ProgressSink {
    /// Wraps a callback.
    pub fn new(f: impl Fn(&LayerProgress) + Send + Sync + 'static) -> Self {
        ProgressSink(Arc::new(f))
    }

    pub(crate) fn emit(&self, digest: &Digest, state: LayerState, done: u64, total: u64) {
        (self.0)(&LayerProgress {
            digest: digest.clone(),
            state,
            done,
            total,
        });
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}
