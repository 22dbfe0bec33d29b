//! Kubernetes' own syntax and length limits for the fields of an instance, as the API
//! server enforces them (k8s.io/apimachinery/pkg/util/validation). Each check returns a
//! message a sender can act on.

use crate::CLUSTER_SCOPE;

/// Longest object name (a DNS-1123 subdomain, or a path segment name for some kinds).
pub const MAX_NAME_LEN: usize = 253;
/// Longest namespace, label name part and label value (a DNS-1123 label).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest label or annotation key prefix (a DNS-1123 subdomain).
pub const MAX_PREFIX_LEN: usize = 253;
/// Kubernetes caps all annotations of an object together at 256 KiB.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_PREFIX_LEN && s.split('.').all(is_dns1123_label)
}

/// Object names. Most kinds require a DNS-1123 subdomain, but some (RBAC roles such as
/// `system:controller:foo`) only need to be a valid path segment, so the check is the
/// looser of the two: what every kind accepts is accepted here.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters (got {})",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("may not be '{name}'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '%') || c.is_control())
    {
        return Err(format!("may not contain {c:?}"));
    }
    Ok(())
}

/// Namespaces are DNS-1123 labels; `_cluster` marks cluster-scoped objects.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    if ns == CLUSTER_SCOPE || is_dns1123_label(ns) {
        Ok(())
    } else if ns.is_empty() {
        Err(format!(
            "must not be empty (use '{CLUSTER_SCOPE}' for cluster-scoped objects)"
        ))
    } else {
        Err(format!(
            "must be a DNS-1123 label (lowercase letters, digits and '-', at most {MAX_LABEL_LEN} characters) or '{CLUSTER_SCOPE}'"
        ))
    }
}

/// Kinds are CamelCase identifiers such as `Deployment`.
pub fn check_kind(kind: &str) -> Result<(), String> {
    let mut chars = kind.chars();
    match chars.next() {
        None => Err("must not be empty".into()),
        Some(c) if !c.is_ascii_alphabetic() => Err("must start with a letter".into()),
        _ if !chars.all(|c| c.is_ascii_alphanumeric()) => {
            Err("must contain only letters and digits".into())
        }
        _ if kind.len() > MAX_LABEL_LEN => {
            Err(format!("must be at most {MAX_LABEL_LEN} characters"))
        }
        _ => Ok(()),
    }
}

/// apiVersion is `version` for the core group or `group/version` otherwise.
pub fn check_api_version(api_version: &str) -> Result<(), String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (Some(g), v),
        None => (None, api_version),
    };
    if let Some(g) = group {
        if !is_dns1123_subdomain(g) {
            return Err(format!("group {g:?} must be a DNS-1123 subdomain"));
        }
    }
    if !is_dns1123_label(version) {
        return Err(format!(
            "version {version:?} must be a DNS-1123 label such as v1 or v1beta1"
        ));
    }
    Ok(())
}

/// A qualified key, `[prefix/]name`, as used by labels and annotations.
pub fn check_qualified_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return Err(format!(
                "key {key:?}: prefix must be a DNS-1123 subdomain of at most {MAX_PREFIX_LEN} characters"
            ));
        }
    }
    if !is_label_name(name) {
        return Err(format!(
            "key {key:?}: name part must be 1-{MAX_LABEL_LEN} characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Label values are empty or a label name.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "value {value:?} must be empty or 1-{MAX_LABEL_LEN} characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// createdAt is an RFC 3339 timestamp (the Go controller sends `2006-01-02T15:04:05Z`).
pub fn check_timestamp(ts: &str) -> Result<(), String> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|_| ())
        .map_err(|e| format!("{ts:?} is not an RFC 3339 timestamp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_loosest_kubernetes_rule() {
        assert!(check_name("nginx").is_ok());
        assert!(check_name("system:controller:job-controller").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name(&"a".repeat(254)).is_err());
        assert!(check_name(&"a".repeat(253)).is_ok());
    }

    #[test]
    fn namespaces_are_dns_labels_or_the_cluster_marker() {
        assert!(check_namespace("default").is_ok());
        assert!(check_namespace("_cluster").is_ok());
        assert!(check_namespace("Default").is_err());
        assert!(check_namespace("-x").is_err());
        assert!(check_namespace(&"a".repeat(64)).is_err());
        assert!(check_namespace("").is_err());
    }

    #[test]
    fn api_versions_and_kinds() {
        assert!(check_api_version("v1").is_ok());
        assert!(check_api_version("apps/v1").is_ok());
        assert!(check_api_version("postgresql.cnpg.io/v1beta1").is_ok());
        assert!(check_api_version("Apps/v1").is_err());
        assert!(check_api_version("apps/").is_err());
        assert!(check_kind("Deployment").is_ok());
        assert!(check_kind("").is_err());
        assert!(check_kind("Deploy-ment").is_err());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(check_qualified_key("app").is_ok());
        assert!(check_qualified_key("app.kubernetes.io/name").is_ok());
        assert!(check_qualified_key("-app").is_err());
        assert!(check_qualified_key("Bad_Prefix/x").is_err());
        assert!(check_qualified_key(&"a".repeat(64)).is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_3-x").is_ok());
        assert!(check_label_value("has space").is_err());
    }

    #[test]
    fn timestamps_must_be_rfc3339() {
        assert!(check_timestamp("2026-02-20T10:00:00Z").is_ok());
        assert!(check_timestamp("0001-01-01T00:00:00Z").is_ok());
        assert!(check_timestamp("yesterday").is_err());
    }
}
