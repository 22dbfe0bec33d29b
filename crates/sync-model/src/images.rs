//! The container images of a Pod or of a workload's pod template, read from the object's
//! JSON: part of an instance's document text (a new image is a real change).

use serde_json::Value;

use crate::{MAX_IMAGES, MAX_IMAGE_BYTES};

/// The container images (init containers included) of a Pod or of a workload's pod
/// template, sorted and without duplicates; empty for every other kind.
pub fn images_of(group: &str, kind: &str, obj: &Value) -> Vec<String> {
    let pod_spec = match (group, kind) {
        ("", "Pod") => "/spec",
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job") => {
            "/spec/template/spec"
        }
        ("batch", "CronJob") => "/spec/jobTemplate/spec/template/spec",
        _ => return Vec::new(),
    };
    let Some(spec) = obj.pointer(pod_spec) else {
        return Vec::new();
    };
    let mut out: Vec<String> = ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec.get(list).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .filter(|i| !i.is_empty() && i.len() <= MAX_IMAGE_BYTES && !i.contains(char::is_whitespace))
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    // An extreme object is cut to the contract's limit, not refused by the server.
    out.truncate(MAX_IMAGES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_come_from_pods_and_pod_templates_sorted_once_each() {
        let pod = json!({"spec": {"initContainers": [{"image": "busybox:1"}],
            "containers": [{"image": "nginx:1.27"}, {"image": "busybox:1"}]}});
        assert_eq!(images_of("", "Pod", &pod), ["busybox:1", "nginx:1.27"]);
        let deploy = json!({"spec": {"template": {"spec": {"containers": [{"image": "api:2"}]}}}});
        assert_eq!(images_of("apps", "Deployment", &deploy), ["api:2"]);
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec":
            {"containers": [{"image": "backup:3"}]}}}}}});
        assert_eq!(images_of("batch", "CronJob", &cron), ["backup:3"]);
        assert!(images_of("", "ConfigMap", &pod).is_empty());
    }
}
