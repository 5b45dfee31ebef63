//! Per-key mutual exclusion for work that must happen once: concurrent
//! pulls and imports that share a blob fetch it once and share a layer
//! unpack it once (keys `blob:<digest>`, `layer:<chain id>`). The second
//! caller waits for the first, then finds the blob/layer present and skips
//! it. Entries are dropped when nobody holds or waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

type Map = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-key mutual exclusion.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    map: Map,
}

/// Holds a key of an [`InFlight`]; released on drop.
#[derive(Debug)]
pub struct InFlightGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    map: Map,
}

impl InFlight {
    fn entry(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.map).entry(key.to_owned()).or_default().clone()
    }

    /// Waits (async) for `key`.
    pub async fn acquire(&self, key: &str) -> InFlightGuard {
        let guard = self.entry(key).lock_owned().await;
        self.guard(key, guard)
    }

    /// Waits (blocking; not from async context) for `key`.
    pub fn acquire_blocking(&self, key: &str) -> InFlightGuard {
        let guard = self.entry(key).blocking_lock_owned();
        self.guard(key, guard)
    }

    fn guard(&self, key: &str, guard: OwnedMutexGuard<()>) -> InFlightGuard {
        InFlightGuard {
            guard: Some(guard),
            key: key.to_owned(),
            map: self.map.clone(),
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = lock(&self.map);
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}
