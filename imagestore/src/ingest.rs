//! Coordination between concurrent operations on one store:
//!
//! - [`InFlight`]: a per-key (blob digest, chain ID) lock, so concurrent
//!   pulls that share a layer fetch and unpack it once — the second waits
//!   for the first, then finds the blob/layer present and skips it;
//! - [`Leases`]: pulls and imports hold a lease for their whole run;
//!   garbage collection waits for all leases to end and blocks new ones
//!   while it runs, so it never deletes a blob or layer that an in-flight
//!   operation has stored but not yet recorded.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

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
        if map.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.key);
        }
    }
}

#[derive(Debug, Default)]
struct LeaseState {
    active: usize,
    collecting: bool,
}

/// Leases that hold off garbage collection.
#[derive(Debug, Default, Clone)]
pub struct Leases {
    inner: Arc<(Mutex<LeaseState>, Condvar)>,
}

/// An active lease; ends on drop.
#[derive(Debug)]
pub struct Lease {
    leases: Leases,
}

/// Exclusive right to collect garbage; ends on drop.
#[derive(Debug)]
pub struct Collecting {
    leases: Leases,
}

impl Leases {
    /// Takes a lease (waits while a collection runs; collections are short).
    pub fn lease(&self) -> Lease {
        let (m, cv) = &*self.inner;
        let mut state = lock(m);
        while state.collecting {
            state = cv.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.active += 1;
        Lease {
            leases: self.clone(),
        }
    }

    /// Waits until no lease is held and takes the collector's lock.
    pub fn collect(&self) -> Collecting {
        let (m, cv) = &*self.inner;
        let mut state = lock(m);
        while state.collecting || state.active > 0 {
            state = cv.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.collecting = true;
        Collecting {
            leases: self.clone(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (m, cv) = &*self.leases.inner;
        lock(m).active -= 1;
        cv.notify_all();
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        let (m, cv) = &*self.leases.inner;
        lock(m).collecting = false;
        cv.notify_all();
    }
}
