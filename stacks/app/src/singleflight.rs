//! `--single-flight`: request coalescing for cache misses. While one request of this process
//! reads a key from the DB (and fills the cache), other requests that miss the same key wait
//! for its result instead of reading the DB themselves. Coalescing is per process: the other
//! region's app (and any other instance) still reads on its own.
//!
//! The shared read runs in a spawned task, so it finishes (and leaves the table) even when
//! the request that started it is abandoned; it runs under that request's deadline. Each
//! waiter still waits only until its own deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};

use crate::cache::Entry;
use crate::error::ApiError;

/// The result of one shared read: the row (or `None`: no such key), or the read's error.
pub type ReadResult = Result<Option<Entry>, ApiError>;

/// The reads in flight, by key.
#[derive(Default)]
pub struct SingleFlight {
    /// One shared read per key being read now; removed when it completes.
    flights: Mutex<HashMap<String, Shared<BoxFuture<'static, ReadResult>>>>,
}

impl SingleFlight {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The result of `read` for `key`, or of the read of `key` already in flight (then
    /// `read` is dropped unrun). Returns the result and whether it was joined.
    pub async fn run(
        self: &Arc<Self>,
        key: &str,
        read: impl Future<Output = ReadResult> + Send + 'static,
    ) -> (ReadResult, bool) {
        let (flight, joined) = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            match flights.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let this = Arc::clone(self);
                    let owned_key = key.to_owned();
                    // The task removes its entry when done; it cannot get there before the
                    // insert below, which holds the lock.
                    let task = tokio::spawn(async move {
                        let result = read.await;
                        this.flights
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&owned_key);
                        result
                    });
                    let flight = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(ApiError::Unavailable(format!(
                                "read db: the read failed: {e}"
                            )))
                        })
                    }
                    .boxed()
                    .shared();
                    flights.insert(key.to_owned(), flight.clone());
                    (flight, false)
                }
            }
        };
        (flight.await, joined)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_reads_of_one_key_share_one_run_and_the_next_one_runs_again() {
        let flights = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let read = |value: &'static str| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Some(Entry {
                    value: value.to_owned(),
                    version: 1,
                    write_id: 1,
                    hlc: None,
                }))
            }
        };
        let results = futures::future::join_all((0..10).map(|_| flights.run("k", read("a")))).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(results.iter().filter(|(_, joined)| !joined).count(), 1);
        for (result, _) in &results {
            assert_eq!(result.as_ref().unwrap().as_ref().unwrap().value, "a");
        }
        // Another key is another flight; a finished flight is gone.
        let (other, joined) = flights.run("other", read("b")).await;
        assert!(!joined);
        assert_eq!(other.unwrap().unwrap().value, "b");
        let (again, joined) = flights.run("k", read("c")).await;
        assert!(!joined);
        assert_eq!(again.unwrap().unwrap().value, "c");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(flights.flights.lock().unwrap().is_empty());
    }
}
