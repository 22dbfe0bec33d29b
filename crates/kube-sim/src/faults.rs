//! Faults for reliability tests: injected latency and error responses per resource and verb or
//! per API group's discovery, pausing all answers, dropping every open watch, and request
//! counters to assert on.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One injected fault. `resource` matches a plural (`pods`) or `plural.group`
/// (`deployments.apps`); `verb` one of get, list, watch, create, update, patch, delete,
/// deletecollection. `None` matches all.
///
/// With `group` set, the fault applies to that API group's discovery instead
/// (`/apis/{group}` and `/apis/{group}/{version}`), the way an aggregated API whose backend is
/// down answers 503 while `/apis` still lists it; `resource` and `verb` are then ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Fault {
    pub resource: Option<String>,
    pub verb: Option<String>,
    /// An API group (`metrics.k8s.io`) whose discovery the fault applies to.
    pub group: Option<String>,
    /// Delay before answering.
    #[serde(rename = "latencyMs", with = "millis")]
    pub latency: Option<Duration>,
    /// Answer with a `metav1.Status` of this HTTP code instead of serving the request.
    pub error_code: Option<u16>,
    /// Apply to this many matching requests, then disappear (`None`: until cleared).
    pub times: Option<u32>,
    /// Disappear this long after being injected (`None`: until cleared); with `times`, whichever
    /// comes first.
    #[serde(rename = "forMs", with = "millis")]
    pub duration: Option<Duration>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

impl Fault {
    /// Every matching request fails with `code`.
    pub fn error(code: u16) -> Self {
        Self {
            error_code: Some(code),
            ..Self::default()
        }
    }

    /// Every matching request waits `d` first.
    pub fn latency(d: Duration) -> Self {
        Self {
            latency: Some(d),
            ..Self::default()
        }
    }

    pub fn on_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn on_verb(mut self, verb: impl Into<String>) -> Self {
        self.verb = Some(verb.into());
        self
    }

    /// Applies to the discovery of API group `group` instead of resource requests. A group the
    /// simulator does not serve is listed in `/apis` from then on, as an aggregated API
    /// (`metrics.k8s.io` of metrics-server) is while its backend is down.
    pub fn on_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// The fault disappears `d` after it is injected.
    pub fn for_duration(mut self, d: Duration) -> Self {
        self.duration = Some(d);
        self
    }

    fn matches(&self, plural: &str, qualified: &str, verb: &str) -> bool {
        self.group.is_none()
            && self
                .resource
                .as_deref()
                .is_none_or(|r| r == plural || r == qualified)
            && self.verb.as_deref().is_none_or(|v| v == verb)
    }
}

/// An injected fault and when it disappears (from its `duration`, set at injection).
struct Rule {
    fault: Fault,
    expires_at: Option<Instant>,
}

impl Rule {
    fn expired(&self, now: Instant) -> bool {
        self.fault.times == Some(0) || self.expires_at.is_some_and(|t| now >= t)
    }
}

/// What the faults say about one request.
#[derive(Debug, Default)]
pub struct Verdict {
    pub latency: Duration,
    pub error_code: Option<u16>,
}

/// Fault state shared by the server and the handle.
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    counters: Mutex<BTreeMap<(String, String), u64>>,
    paused: watch::Sender<bool>,
    /// Bumped to end every open watch.
    drop_epoch: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            counters: Mutex::new(BTreeMap::new()),
            paused: watch::channel(false).0,
            drop_epoch: watch::channel(0).0,
        }
    }
}

impl Faults {
    pub fn inject(&self, fault: Fault) {
        let expires_at = fault.duration.map(|d| Instant::now() + d);
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Rule { fault, expires_at });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The faults still in force.
    pub fn list(&self) -> Vec<Fault> {
        let now = Instant::now();
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.retain(|r| !r.expired(now));
        rules.iter().map(|r| r.fault.clone()).collect()
    }

    /// Counts the request and decides its faults.
    pub fn on_request(&self, plural: &str, qualified: &str, verb: &str) -> Verdict {
        self.decide(plural, verb, |f| f.matches(plural, qualified, verb))
    }

    /// Counts a discovery request of an API group (counter `group/discovery`) and decides its
    /// faults.
    pub fn on_discovery(&self, group: &str) -> Verdict {
        self.decide(group, "discovery", |f| f.group.as_deref() == Some(group))
    }

    fn decide(&self, counter: &str, verb: &str, applies: impl Fn(&Fault) -> bool) -> Verdict {
        *self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((counter.to_string(), verb.to_string()))
            .or_default() += 1;
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = Verdict::default();
        if rules.is_empty() {
            return v;
        }
        let now = Instant::now();
        rules.retain(|r| !r.expired(now));
        for r in rules
            .iter_mut()
            .filter(|r| applies(&r.fault))
            .map(|r| &mut r.fault)
        {
            if let Some(l) = r.latency {
                v.latency += l;
            }
            if v.error_code.is_none() {
                v.error_code = r.error_code;
            }
            if let Some(t) = r.times.as_mut() {
                *t = t.saturating_sub(1);
            }
        }
        rules.retain(|r| !r.expired(now));
        v
    }

    pub fn count(&self, plural: &str, verb: &str) -> u64 {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(plural.to_string(), verb.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// All counters as `plural/verb -> count`.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((r, v), n)| (format!("{r}/{v}"), *n))
            .collect()
    }

    pub fn reset_counts(&self) {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Waits while answering is paused.
    pub async fn wait_unpaused(&self) {
        let mut rx = self.paused.subscribe();
        // wait_for returns an error only if the sender is gone, which outlives every request.
        let _ = rx.wait_for(|p| !*p).await;
    }

    pub fn drop_watches(&self) {
        self.drop_epoch.send_modify(|e| *e += 1);
    }

    pub fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drop_epoch.subscribe()
    }
}
