//! Which API groups' discovery is failing (an aggregated API whose backend is down, such as
//! `metrics.k8s.io` without metrics-server): since when, why, and when each is tried again.
//! The rest of the cluster is watched meanwhile; the types of an unavailable group are
//! unknown, not gone, so nothing of them leaves the store. Each change of state is logged
//! once, counted in a gauge and shown by `/readyz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::sender::RetryConfig;

/// Unavailable groups and why, as `/readyz` shows them; shared with the operations endpoints.
pub type UnavailableGroups = Arc<Mutex<BTreeMap<String, String>>>;

/// How often an unavailable group's discovery is retried: soon at first, then every 30 s at
/// most (metrics-server usually starts within a minute; a retry is one small request).
const GROUP_RETRY: RetryConfig = RetryConfig {
    min_delay: Duration::from_secs(2),
    max_delay: Duration::from_secs(30),
};

struct Outage {
    since: Instant,
    next_try: Instant,
    delays: Box<dyn Iterator<Item = Duration> + Send + Sync>,
}

/// What an update changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AvailabilityChange {
    pub became_unavailable: Vec<String>,
    pub became_available: Vec<String>,
}

/// The unavailable groups and their retry schedule.
pub(crate) struct GroupAvailability {
    outages: BTreeMap<String, Outage>,
    retry: RetryConfig,
    shown: UnavailableGroups,
    metrics: Metrics,
}

impl GroupAvailability {
    pub fn new(shown: UnavailableGroups, metrics: Metrics) -> Self {
        GroupAvailability {
            outages: BTreeMap::new(),
            retry: GROUP_RETRY,
            shown,
            metrics,
        }
    }

    #[cfg(test)]
    fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The unavailable groups.
    pub fn unavailable(&self) -> std::collections::BTreeSet<String> {
        self.outages.keys().cloned().collect()
    }

    pub fn is_unavailable(&self, group: &str) -> bool {
        self.outages.contains_key(group)
    }

    /// Takes in a discovery's answer. `asked` is the groups it covered (`None`: every group,
    /// so every group not named in `unavailable` answered); `unavailable` those that failed.
    pub fn update(
        &mut self,
        asked: Option<&[String]>,
        unavailable: &BTreeMap<String, String>,
        now: Instant,
    ) -> AvailabilityChange {
        let mut change = AvailabilityChange::default();
        let recovered: Vec<String> = self
            .outages
            .keys()
            .filter(|g| !unavailable.contains_key(*g))
            .filter(|g| asked.is_none_or(|a| a.contains(g)))
            .cloned()
            .collect();
        for group in recovered {
            if let Some(outage) = self.outages.remove(&group) {
                info!(
                    group = %group,
                    unavailable_for_s = now.duration_since(outage.since).as_secs(),
                    "API group available again; watching its types"
                );
                change.became_available.push(group);
            }
        }
        for (group, reason) in unavailable {
            if self.outages.contains_key(group) {
                continue;
            }
            let mut delays: Box<dyn Iterator<Item = Duration> + Send + Sync> =
                Box::new(self.retry.delays());
            let first = delays.next().unwrap_or(self.retry.max_delay);
            warn!(
                group = %group,
                reason = %reason,
                retry_in_ms = first.as_millis() as u64,
                "API group unavailable; watching every other group and retrying it in the background (its stored documents are kept)"
            );
            self.outages.insert(
                group.clone(),
                Outage {
                    since: now,
                    next_try: now + first,
                    delays,
                },
            );
            change.became_unavailable.push(group.clone());
        }
        if let Ok(mut shown) = self.shown.lock() {
            shown.retain(|g, _| self.outages.contains_key(g));
            for (group, reason) in unavailable {
                if self.outages.contains_key(group) {
                    shown.insert(group.clone(), reason.clone());
                }
            }
        }
        self.metrics
            .unavailable_api_groups
            .set(self.outages.len() as i64);
        change
    }

    /// When the next retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.outages.values().map(|o| o.next_try).min()
    }

    /// The groups whose retry is due at `now`; each is scheduled for its next retry.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let max = self.retry.max_delay;
        self.outages
            .iter_mut()
            .filter(|(_, o)| o.next_try <= now)
            .map(|(g, o)| {
                o.next_try = now + o.delays.next().unwrap_or(max);
                g.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> RetryConfig {
        RetryConfig {
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
        }
    }

    fn failing(group: &str) -> BTreeMap<String, String> {
        [(group.to_string(), "503".to_string())].into()
    }

    #[test]
    fn a_failing_group_is_reported_once_retried_with_backoff_and_cleared_when_it_answers() {
        let shown = UnavailableGroups::default();
        let metrics = Metrics::new();
        let mut a = GroupAvailability::new(shown.clone(), metrics.clone()).with_retry(quick());
        let t0 = Instant::now();
        let change = a.update(None, &failing("metrics.k8s.io"), t0);
        assert_eq!(change.became_unavailable, ["metrics.k8s.io"]);
        assert_eq!(metrics.unavailable_api_groups.get(), 1);
        assert!(shown.lock().unwrap().contains_key("metrics.k8s.io"));
        // Failing again is no new state.
        let again = a.update(None, &failing("metrics.k8s.io"), t0);
        assert_eq!(again, AvailabilityChange::default());

        let first = a.next_retry().unwrap();
        assert!(first > t0 && first <= t0 + Duration::from_secs(2));
        assert!(a.take_due(t0).is_empty());
        assert_eq!(a.take_due(first), ["metrics.k8s.io"]);
        let second = a.next_retry().unwrap();
        assert!(second > first, "the next retry waits again");

        // A discovery of another group says nothing about this one.
        let other = a.update(Some(&["example.com".to_string()]), &BTreeMap::new(), second);
        assert!(other.became_available.is_empty());
        assert!(a.is_unavailable("metrics.k8s.io"));

        let back = a.update(
            Some(&["metrics.k8s.io".to_string()]),
            &BTreeMap::new(),
            second,
        );
        assert_eq!(back.became_available, ["metrics.k8s.io"]);
        assert_eq!(a.next_retry(), None);
        assert_eq!(metrics.unavailable_api_groups.get(), 0);
        assert!(shown.lock().unwrap().is_empty());
    }
}
