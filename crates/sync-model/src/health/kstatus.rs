//! The health rules: an object's status read as a coarse health with a one-line reason.
//! Pure functions of the object's JSON and two facts of its metadata; the rules are those of
//! kstatus (sigs.k8s.io/cli-utils `pkg/kstatus/status`, as Flux and Config Sync use them),
//! so that "Failed" here means what it means there. The watcher stores what they say in
//! the index; the MCP server's `get_resource` says the same of the live object.

use serde_json::Value;

use super::{Health, HealthStatus};

/// What the rules read of an object's metadata besides its JSON body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaFacts {
    /// `metadata.deletionTimestamp` is set: the object is being deleted.
    pub deleting: bool,
    /// `metadata.generation`: the spec version its controller should have observed.
    pub generation: Option<i64>,
}

impl MetaFacts {
    /// The facts of a whole object as the API server returns it (with `metadata`).
    pub fn of_object(object: &Value) -> Self {
        let meta = &object["metadata"];
        MetaFacts {
            deleting: meta.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            generation: meta.get("generation").and_then(Value::as_i64),
        }
    }
}

/// Waiting reasons of a container that will not resolve without help: the Pod is Failed
/// with the reason, not InProgress (stricter than kstatus, which calls them InProgress, so
/// that "the failing Pods" finds them).
const FAILED_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// True for the built-in kinds whose health and images cw reads (the watcher watches
/// them as whole objects). Custom resources with a status subresource are read too (the
/// watcher's `ResourceType::reads_status`).
pub fn is_health_kind(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "apps",
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) | ("batch", "Job" | "CronJob")
            | ("", "Pod" | "PersistentVolumeClaim" | "Service")
    )
}

/// The health of an object of `group` and `kind` from its metadata facts and its JSON
/// (only `spec` and `status` are read), or `None` when nothing in it says anything.
pub fn assess(group: &str, kind: &str, meta: MetaFacts, obj: &Value) -> Option<Health> {
    if meta.deleting {
        return Some(Health::new(
            HealthStatus::Terminating,
            "scheduled for deletion",
        ));
    }
    if let Some(h) = generic(meta, obj) {
        return Some(h);
    }
    // No status at all: no controller has written one (a cluster without the controller,
    // a simulator's seed). Unknown, not "0 of 3 ready": nothing was observed.
    let no_status = obj
        .get("status")
        .is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty()));
    if no_status && kind != "Service" {
        return None;
    }
    match (group, kind) {
        ("apps", "Deployment") => Some(deployment(obj)),
        ("apps", "StatefulSet") => Some(statefulset(obj)),
        ("apps", "DaemonSet") => Some(daemonset(obj)),
        ("apps", "ReplicaSet") => Some(replicaset(obj)),
        ("batch", "Job") => Some(job(obj)),
        ("", "Pod") => Some(pod(obj)),
        ("", "PersistentVolumeClaim") => Some(pvc(obj)),
        ("", "Service") => Some(service(obj)),
        _ if is_health_kind(group, kind) => None,
        _ => custom(obj),
    }
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn count(obj: &Value, pointer: &str) -> i64 {
    int(obj, pointer).unwrap_or(0)
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// One entry of `status.conditions`.
struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

impl Condition<'_> {
    /// `reason: message`, or whichever of them is there.
    fn describe(&self, fallback: &str) -> String {
        match (self.reason.is_empty(), self.message.is_empty()) {
            (false, false) => format!("{}: {}", self.reason, self.message),
            (false, true) => self.reason.to_string(),
            (true, false) => self.message.to_string(),
            (true, true) => fallback.to_string(),
        }
    }
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<Condition<'a>> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .map(|c| Condition {
            status: text(c, "/status"),
            reason: text(c, "/reason"),
            message: text(c, "/message"),
        })
}

fn is_true<'a>(obj: &'a Value, kind: &str) -> Option<Condition<'a>> {
    condition(obj, kind).filter(|c| c.status == "True")
}

/// kstatus' checkGenericProperties: a generation the controller has not observed yet, then
/// the standard Reconciling and Stalled conditions.
fn generic(meta: MetaFacts, obj: &Value) -> Option<Health> {
    if let (Some(generation), Some(observed)) =
        (meta.generation, int(obj, "/status/observedGeneration"))
    {
        if observed < generation {
            return Some(Health::new(
                HealthStatus::InProgress,
                format!("generation {generation} not yet observed (observed {observed})"),
            ));
        }
    }
    if let Some(c) = is_true(obj, "Reconciling") {
        return Some(Health::new(
            HealthStatus::InProgress,
            c.describe("reconciling"),
        ));
    }
    if let Some(c) = is_true(obj, "Stalled") {
        return Some(Health::new(HealthStatus::Failed, c.describe("stalled")));
    }
    None
}

fn in_progress(reason: impl Into<String>) -> Health {
    Health::new(HealthStatus::InProgress, reason)
}

fn current(reason: impl Into<String>) -> Health {
    Health::new(HealthStatus::Current, reason)
}

fn desired_replicas(obj: &Value) -> i64 {
    // An unset spec.replicas means 1, as the API server defaults it.
    int(obj, "/spec/replicas").unwrap_or(1)
}

fn deployment(obj: &Value) -> Health {
    if condition(obj, "Progressing").is_some_and(|c| c.reason == "ProgressDeadlineExceeded") {
        return Health::new(HealthStatus::Failed, "progress deadline exceeded");
    }
    let want = desired_replicas(obj);
    let updated = count(obj, "/status/updatedReplicas");
    let replicas = count(obj, "/status/replicas");
    let available = count(obj, "/status/availableReplicas");
    let ready = count(obj, "/status/readyReplicas");
    if updated < want {
        return in_progress(format!("{updated}/{want} replicas updated"));
    }
    if replicas > updated {
        return in_progress(format!(
            "{} old replicas pending termination",
            replicas - updated
        ));
    }
    if available < want {
        return in_progress(format!("{available}/{want} replicas available"));
    }
    if ready < want {
        return in_progress(format!("{ready}/{want} replicas ready"));
    }
    if let Some(c) = condition(obj, "Available").filter(|c| c.status == "False") {
        return in_progress(c.describe("not available"));
    }
    current(format!("{available}/{want} replicas available"))
}

fn statefulset(obj: &Value) -> Health {
    if text(obj, "/spec/updateStrategy/type") == "OnDelete" {
        return current("OnDelete update strategy: not tracked");
    }
    let want = desired_replicas(obj);
    let replicas = count(obj, "/status/replicas");
    let ready = count(obj, "/status/readyReplicas");
    let updated = count(obj, "/status/updatedReplicas");
    let partition = count(obj, "/spec/updateStrategy/rollingUpdate/partition");
    if replicas < want {
        return in_progress(format!("{replicas}/{want} replicas created"));
    }
    if ready < want {
        return in_progress(format!("{ready}/{want} replicas ready"));
    }
    if partition > 0 {
        let expected = (want - partition).max(0);
        if updated < expected {
            return in_progress(format!(
                "{updated}/{expected} replicas updated (partition {partition})"
            ));
        }
        return current(format!(
            "{ready}/{want} replicas ready (partition {partition})"
        ));
    }
    let (cur, upd) = (
        text(obj, "/status/currentRevision"),
        text(obj, "/status/updateRevision"),
    );
    if cur != upd {
        return in_progress(format!("rolling out revision {upd}"));
    }
    current(format!("{ready}/{want} replicas ready"))
}

fn daemonset(obj: &Value) -> Health {
    let Some(desired) = int(obj, "/status/desiredNumberScheduled") else {
        return in_progress("not yet observed by its controller");
    };
    let scheduled = count(obj, "/status/currentNumberScheduled");
    let updated = count(obj, "/status/updatedNumberScheduled");
    let available = count(obj, "/status/numberAvailable");
    let ready = count(obj, "/status/numberReady");
    if scheduled < desired {
        return in_progress(format!("{scheduled}/{desired} pods scheduled"));
    }
    if updated < desired {
        return in_progress(format!("{updated}/{desired} pods updated"));
    }
    if available < desired {
        return in_progress(format!("{available}/{desired} pods available"));
    }
    if ready < desired {
        return in_progress(format!("{ready}/{desired} pods ready"));
    }
    current(format!("{available}/{desired} pods available"))
}

fn replicaset(obj: &Value) -> Health {
    if let Some(c) = is_true(obj, "ReplicaFailure") {
        return in_progress(c.describe("replica failure"));
    }
    let want = desired_replicas(obj);
    let labeled = count(obj, "/status/fullyLabeledReplicas");
    let available = count(obj, "/status/availableReplicas");
    let ready = count(obj, "/status/readyReplicas");
    if labeled < want {
        return in_progress(format!("{labeled}/{want} replicas labeled"));
    }
    if available < want {
        return in_progress(format!("{available}/{want} replicas available"));
    }
    if ready < want {
        return in_progress(format!("{ready}/{want} replicas ready"));
    }
    current(format!("{available}/{want} replicas available"))
}

fn job(obj: &Value) -> Health {
    if let Some(c) = is_true(obj, "Failed") {
        return Health::new(HealthStatus::Failed, c.describe("job failed"));
    }
    if is_true(obj, "Complete").is_some() || is_true(obj, "SuccessCriteriaMet").is_some() {
        return current(format!(
            "complete: {} succeeded",
            count(obj, "/status/succeeded")
        ));
    }
    if is_true(obj, "Suspended").is_some() {
        return current("suspended");
    }
    in_progress(format!(
        "running: {} active, {} succeeded, {} failed",
        count(obj, "/status/active"),
        count(obj, "/status/succeeded"),
        count(obj, "/status/failed")
    ))
}

fn pod(obj: &Value) -> Health {
    match text(obj, "/status/phase") {
        "Succeeded" => return current("completed"),
        "Failed" => {
            let why = text(obj, "/status/reason");
            let why = if why.is_empty() {
                "exited with an error"
            } else {
                why
            };
            return Health::new(HealthStatus::Failed, format!("pod failed: {why}"));
        }
        _ => {}
    }
    for list in ["/status/initContainerStatuses", "/status/containerStatuses"] {
        for c in obj
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let reason = text(c, "/state/waiting/reason");
            if FAILED_WAITING_REASONS.contains(&reason) {
                return Health::new(
                    HealthStatus::Failed,
                    format!("{reason}: container {}", text(c, "/name")),
                );
            }
        }
    }
    if let Some(c) = condition(obj, "PodScheduled").filter(|c| c.status == "False") {
        return in_progress(c.describe("not scheduled"));
    }
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let total = statuses.map_or(0, Vec::len);
    let ready = statuses.map_or(0, |s| {
        s.iter()
            .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
            .count()
    });
    let phase = match text(obj, "/status/phase") {
        "" => "Pending",
        p => p,
    };
    if phase == "Running" && is_true(obj, "Ready").is_some() {
        return current(format!("running, {ready}/{total} containers ready"));
    }
    in_progress(format!("{phase}, {ready}/{total} containers ready"))
}

fn pvc(obj: &Value) -> Health {
    match text(obj, "/status/phase") {
        "Bound" => current("bound"),
        "Lost" => Health::new(HealthStatus::Failed, "claim lost its volume"),
        "" => in_progress("not yet bound"),
        phase => in_progress(format!("{phase}, not yet bound")),
    }
}

fn service(obj: &Value) -> Health {
    if text(obj, "/spec/type") != "LoadBalancer" {
        return current("");
    }
    let has_ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_ingress {
        current("load balancer ready")
    } else {
        in_progress("waiting for a load balancer address")
    }
}

/// A custom resource: its Ready condition when it has one (True: Current; False: Failed, as
/// Flux and Crossplane mean it; Unknown: InProgress), else nothing known.
fn custom(obj: &Value) -> Option<Health> {
    let ready = condition(obj, "Ready")?;
    Some(match ready.status {
        "True" => current(ready.message),
        "False" => Health::new(
            HealthStatus::Failed,
            format!("Ready=False: {}", ready.describe("not ready")),
        ),
        _ => in_progress(ready.describe("readiness unknown")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assess_json(group: &str, kind: &str, obj: &Value) -> Option<Health> {
        assess(group, kind, MetaFacts::of_object(obj), obj)
    }

    fn status_of(group: &str, kind: &str, obj: Value) -> (HealthStatus, String) {
        let h = assess_json(group, kind, &obj).expect("a health");
        (h.status, h.reason)
    }

    fn deploy(replicas: i64, updated: i64, available: i64) -> Value {
        json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": 2, "replicas": updated, "updatedReplicas": updated,
                       "availableReplicas": available, "readyReplicas": available}
        })
    }

    #[test]
    fn a_deployment_with_too_few_available_replicas_is_in_progress_and_says_how_many() {
        assert_eq!(
            status_of("apps", "Deployment", deploy(3, 3, 1)),
            (HealthStatus::InProgress, "1/3 replicas available".into())
        );
        assert_eq!(
            status_of("apps", "Deployment", deploy(3, 3, 3)),
            (HealthStatus::Current, "3/3 replicas available".into())
        );
        assert_eq!(
            status_of("apps", "Deployment", deploy(3, 1, 1)).1,
            "1/3 replicas updated"
        );
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_has_failed() {
        let mut d = deploy(3, 3, 1);
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet x has timed out"}]);
        assert_eq!(
            status_of("apps", "Deployment", d),
            (HealthStatus::Failed, "progress deadline exceeded".into())
        );
    }

    #[test]
    fn an_unobserved_generation_is_in_progress_whatever_the_replicas_say() {
        let mut d = deploy(3, 3, 3);
        d["metadata"]["generation"] = json!(3);
        let (s, r) = status_of("apps", "Deployment", d);
        assert_eq!(s, HealthStatus::InProgress);
        assert!(r.contains("generation 3"), "{r}");
    }

    #[test]
    fn a_workload_without_any_status_has_no_health_rather_than_a_made_up_one() {
        let d = json!({"spec": {"replicas": 3}});
        assert_eq!(assess_json("apps", "Deployment", &d), None);
        assert_eq!(
            assess_json("", "Pod", &json!({"spec": {}, "status": {}})),
            None
        );
    }

    #[test]
    fn a_deletion_timestamp_means_terminating_for_any_kind() {
        let obj = json!({"metadata": {"deletionTimestamp": "2026-02-20T10:00:00Z"}});
        assert_eq!(status_of("", "ConfigMap", obj).0, HealthStatus::Terminating);
    }

    #[test]
    fn statefulsets_count_ready_replicas_and_revisions() {
        let s = |ready: i64, cur: &str, upd: &str| {
            json!({"spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": ready,
                "updatedReplicas": 3, "currentRevision": cur, "updateRevision": upd}})
        };
        assert_eq!(
            status_of("apps", "StatefulSet", s(2, "a", "a")),
            (HealthStatus::InProgress, "2/3 replicas ready".into())
        );
        assert_eq!(
            status_of("apps", "StatefulSet", s(3, "a", "b")),
            (HealthStatus::InProgress, "rolling out revision b".into())
        );
        assert_eq!(
            status_of("apps", "StatefulSet", s(3, "b", "b")).0,
            HealthStatus::Current
        );
    }

    #[test]
    fn daemonsets_compare_every_count_with_the_desired_number() {
        let d = |available: i64| {
            json!({"status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                "updatedNumberScheduled": 4, "numberAvailable": available, "numberReady": available}})
        };
        assert_eq!(
            status_of("apps", "DaemonSet", d(3)),
            (HealthStatus::InProgress, "3/4 pods available".into())
        );
        assert_eq!(
            status_of("apps", "DaemonSet", d(4)).0,
            HealthStatus::Current
        );
        assert_eq!(
            status_of("apps", "DaemonSet", json!({"status": {"numberReady": 0}})).0,
            HealthStatus::InProgress
        );
    }

    #[test]
    fn replicasets_count_available_replicas() {
        let r = json!({"spec": {"replicas": 2}, "status": {"fullyLabeledReplicas": 2,
            "availableReplicas": 1, "readyReplicas": 1}});
        assert_eq!(
            status_of("apps", "ReplicaSet", r),
            (HealthStatus::InProgress, "1/2 replicas available".into())
        );
    }

    #[test]
    fn a_pod_in_crash_loop_back_off_has_failed_and_names_the_container() {
        let p = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "web", "ready": true, "state": {"running": {}}},
            {"name": "db", "ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ]}});
        assert_eq!(
            status_of("", "Pod", p),
            (
                HealthStatus::Failed,
                "CrashLoopBackOff: container db".into()
            )
        );
        let pull = json!({"status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "init", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(
            status_of("", "Pod", pull).1,
            "ImagePullBackOff: container init"
        );
    }

    #[test]
    fn pod_phases_decide_when_nothing_is_waiting() {
        let ready = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}});
        assert_eq!(
            status_of("", "Pod", ready),
            (
                HealthStatus::Current,
                "running, 1/1 containers ready".into()
            )
        );
        assert_eq!(
            status_of("", "Pod", json!({"status": {"phase": "Succeeded"}})).0,
            HealthStatus::Current
        );
        assert_eq!(
            status_of(
                "",
                "Pod",
                json!({"status": {"phase": "Failed", "reason": "Evicted"}})
            ),
            (HealthStatus::Failed, "pod failed: Evicted".into())
        );
        let unschedulable = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available"}]}});
        assert_eq!(
            status_of("", "Pod", unschedulable),
            (
                HealthStatus::InProgress,
                "Unschedulable: 0/3 nodes are available".into()
            )
        );
    }

    #[test]
    fn jobs_follow_their_failed_and_complete_conditions() {
        let failed = json!({"status": {"failed": 6, "conditions": [{"type": "Failed",
            "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            status_of("batch", "Job", failed),
            (
                HealthStatus::Failed,
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        let done = json!({"status": {"succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            status_of("batch", "Job", done),
            (HealthStatus::Current, "complete: 1 succeeded".into())
        );
        assert_eq!(
            status_of("batch", "Job", json!({"status": {"active": 1}})).0,
            HealthStatus::InProgress
        );
    }

    #[test]
    fn claims_are_current_once_bound() {
        assert_eq!(
            status_of(
                "",
                "PersistentVolumeClaim",
                json!({"status": {"phase": "Bound"}})
            )
            .0,
            HealthStatus::Current
        );
        assert_eq!(
            status_of(
                "",
                "PersistentVolumeClaim",
                json!({"status": {"phase": "Pending"}})
            ),
            (HealthStatus::InProgress, "Pending, not yet bound".into())
        );
    }

    #[test]
    fn a_load_balancer_service_waits_for_its_address() {
        let lb = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert_eq!(status_of("", "Service", lb).0, HealthStatus::InProgress);
        let ready = json!({"spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
        assert_eq!(status_of("", "Service", ready).0, HealthStatus::Current);
        assert_eq!(
            status_of("", "Service", json!({"spec": {"type": "ClusterIP"}})).0,
            HealthStatus::Current
        );
    }

    #[test]
    fn custom_resources_follow_ready_stalled_and_reconciling() {
        let cr = |conds: Value| {
            json!({"metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "conditions": conds}})
        };
        assert_eq!(
            status_of(
                "postgresql.cnpg.io",
                "Cluster",
                cr(json!([{"type": "Ready", "status": "False",
                "reason": "InstancesNotReady", "message": "1 of 3 instances ready"}]))
            ),
            (
                HealthStatus::Failed,
                "Ready=False: InstancesNotReady: 1 of 3 instances ready".into()
            )
        );
        assert_eq!(
            status_of(
                "x.io",
                "Widget",
                cr(json!([{"type": "Ready", "status": "True"}]))
            )
            .0,
            HealthStatus::Current
        );
        assert_eq!(
            status_of(
                "x.io",
                "Widget",
                cr(json!([{"type": "Stalled", "status": "True", "reason": "BadSpec"}]))
            ),
            (HealthStatus::Failed, "BadSpec".into())
        );
        assert_eq!(
            status_of(
                "x.io",
                "Widget",
                cr(
                    json!([{"type": "Reconciling", "status": "True", "reason": "Upgrading"},
                {"type": "Ready", "status": "False"}])
                )
            ),
            (HealthStatus::InProgress, "Upgrading".into())
        );
        // A custom resource whose status says nothing standard has no health.
        assert_eq!(
            assess_json("x.io", "Widget", &json!({"status": {"phase": "x"}})),
            None
        );
        assert_eq!(assess_json("", "ConfigMap", &json!({"data": {}})), None);
    }
}
