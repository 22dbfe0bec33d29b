//! Waiting for a deadline that may not exist: the buffer's next debounce or flush and the
//! controller's next CRD group check. With no deadline the wait never ends, so a `select!`
//! branch built on it simply never fires.

use tokio::time::Instant;

/// Sleeps until `deadline`, or forever when there is none.
pub async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
