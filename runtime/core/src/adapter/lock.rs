//! Locking a mutex that a panic elsewhere may have poisoned.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not. A poisoned lock only means a panic elsewhere mid-update of a
/// plain collection (a handler's panic is caught before it can reach one); what it holds is
/// still consistent enough to go on, and refusing it would stop a consumer for good.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
