//! Leases that hold garbage collection off: pulls, imports, rootfs
//! preparation and `verify` hold a lease for their whole run; GC waits
//! until no lease is held and blocks new ones while it runs, so it never
//! deletes a blob or layer that an in-flight operation has stored but not
//! yet recorded in the metadata store. (In-process: one process owns a
//! store, which redb's file lock enforces.)

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
