//! Which types are watched: every API group at its preferred version only, resources that
//! support list and watch, no subresources, minus the default exclusions and the user's
//! allow/deny lists. Shared with `cw sync-instances`, so it knows nothing of the watch loop.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, APIResourceList};
use kube::discovery::ApiResource;

/// Types excluded unless named in the allow list, as (plural, group; empty = core): high-churn
/// records that describe no workload (events in both groups, leases, endpointslices), a
/// deprecated API, and Secrets: only their metadata would be sent, but every Secret's name
/// and labels would become searchable (and reading them needs RBAC that returns their
/// data), so they are indexed only when asked ([`TypeFilter::including_secrets`]).
pub const DEFAULT_EXCLUDES: &[(&str, &str)] = &[
    ("events", ""),
    ("events", "events.k8s.io"),
    ("leases", "coordination.k8s.io"),
    ("endpointslices", "discovery.k8s.io"),
    ("componentstatuses", ""),
    SECRETS,
];

/// The core group's Secrets, excluded by default.
const SECRETS: (&str, &str) = ("secrets", "");

/// One watched resource type, at the version its group prefers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    /// `apps/v1`, or `v1` for the core group.
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// The API serves a `<plural>/status` subresource: the type's objects carry a status
    /// that their controller keeps.
    pub has_status: bool,
}

/// What identifies a type inside instance ids: `apiVersion` and `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeKey {
    pub api_version: String,
    pub kind: String,
}

impl fmt::Display for TypeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version, self.kind)
    }
}

impl ResourceType {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        ResourceType {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            has_status: false,
        }
    }

    /// The same type, with or without a status subresource.
    pub fn with_status(mut self, has_status: bool) -> Self {
        self.has_status = has_status;
        self
    }

    /// True when the watch reads whole objects, to extract health and images: the
    /// built-in kinds of [`sync_model::health::is_health_kind`] and custom resources with a
    /// status subresource. Every other type is watched as metadata only (a ConfigMap's
    /// data or a Node's status would cost memory and CPU for nothing cw indexes).
    pub fn reads_status(&self) -> bool {
        sync_model::health::is_health_kind(&self.group, &self.kind)
            || (self.has_status && is_custom_group(&self.group))
    }

    pub fn key(&self) -> TypeKey {
        TypeKey {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
        }
    }

    /// `deployments.apps`, or `pods` for the core group: the name used in the filters.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// What kube's dynamic `Api` needs to address this type.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
}

/// A type named by plural, optionally with its group: `deployments`, `certificates.cert-manager.io`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    pub plural: String,
    /// `None` matches the plural in every group.
    pub group: Option<String>,
}

impl TypeName {
    pub fn parse(raw: &str) -> Option<TypeName> {
        let raw = raw.trim().to_ascii_lowercase();
        if raw.is_empty() {
            return None;
        }
        Some(match raw.split_once('.') {
            Some((plural, group)) => TypeName {
                plural: plural.to_string(),
                group: Some(group.to_string()),
            },
            None => TypeName {
                plural: raw,
                group: None,
            },
        })
    }

    pub fn matches(&self, ty: &ResourceType) -> bool {
        self.plural == ty.plural && self.group.as_ref().is_none_or(|g| *g == ty.group)
    }
}

/// `WATCH_RESOURCE_TYPES` / `EXCLUDE_RESOURCE_TYPES` plus the default exclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFilter {
    /// Empty means every type.
    pub allow: Vec<TypeName>,
    pub deny: Vec<TypeName>,
}

impl Default for TypeFilter {
    fn default() -> Self {
        TypeFilter::new::<&str>(&[], &[])
    }
}

impl TypeFilter {
    /// Builds a filter from the lists' items; the default exclusions are added to `deny`
    /// unless the allow list names them.
    pub fn new<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Self {
        let allow: Vec<TypeName> = allow
            .iter()
            .filter_map(|s| TypeName::parse(s.as_ref()))
            .collect();
        let mut deny: Vec<TypeName> = deny
            .iter()
            .filter_map(|s| TypeName::parse(s.as_ref()))
            .collect();
        for (plural, group) in DEFAULT_EXCLUDES {
            let default = ResourceType::new(group, "v1", "", plural, true);
            if !allow.iter().any(|a| a.matches(&default)) {
                deny.push(TypeName {
                    plural: plural.to_string(),
                    group: Some(group.to_string()),
                });
            }
        }
        TypeFilter { allow, deny }
    }

    /// Lifts the default exclusion of Secrets (`--include-secrets`); a deny list that names
    /// them still wins.
    pub fn including_secrets(mut self) -> Self {
        let (plural, group) = SECRETS;
        self.deny
            .retain(|d| !(d.plural == plural && d.group.as_deref() == Some(group)));
        self
    }

    pub fn admits(&self, ty: &ResourceType) -> bool {
        !self.deny.iter().any(|d| d.matches(ty))
            && (self.allow.is_empty() || self.allow.iter().any(|a| a.matches(ty)))
    }
}

/// `WATCH_NAMESPACES` / `EXCLUDE_NAMESPACES`. Cluster-scoped objects are always admitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceFilter {
    /// Empty means every namespace.
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl NamespaceFilter {
    pub fn admits(&self, namespace: Option<&str>) -> bool {
        match namespace {
            None | Some("") => true,
            Some(ns) => {
                !self.exclude.iter().any(|e| e == ns)
                    && (self.include.is_empty() || self.include.iter().any(|i| i == ns))
            }
        }
    }
}

/// True for groups that only CustomResourceDefinitions define: a dotted name outside
/// Kubernetes' own `*.k8s.io` (built-in groups are `""`, `apps`, `batch`, ... or `*.k8s.io`).
pub fn is_custom_group(group: &str) -> bool {
    group.contains('.') && !group.ends_with(".k8s.io") && group != "k8s.io"
}

/// The watchable, admitted types of one group version's resource list: verbs list and
/// watch, not a subresource (`deployments/status`), each knowing whether it has a status
/// subresource.
pub fn select_resources(
    group: &str,
    version: &str,
    list: &APIResourceList,
    filter: &TypeFilter,
) -> Vec<ResourceType> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .filter(|r| r.verbs.iter().any(|v| v == "list") && r.verbs.iter().any(|v| v == "watch"))
        .map(|r| {
            let status = format!("{}/status", r.name);
            let has_status = list.resources.iter().any(|s| s.name == status);
            ResourceType::new(group, version, &r.kind, &r.name, r.namespaced)
                .with_status(has_status)
        })
        .filter(|t| filter.admits(t))
        .collect()
}

/// The version a group prefers, or its first listed version when it names none.
pub fn preferred_version(group: &APIGroup) -> Option<String> {
    group
        .preferred_version
        .as_ref()
        .map(|v| v.version.clone())
        .or_else(|| group.versions.first().map(|v| v.version.clone()))
}

/// How long one API group's discovery may take before the group counts as unavailable.
/// kube's client retries a 503 by itself (up to 15 times, doubling from 5 ms: minutes), and
/// an aggregated API whose backend is down answers exactly that; the rest of the cluster
/// must not wait for it. A healthy group answers in milliseconds.
pub const GROUP_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Groups discovered at once: each is one small request.
const CONCURRENT_GROUP_DISCOVERIES: usize = 8;

/// What a discovery found: the admitted types of every group that answered, and the groups
/// that did not (with why). The types of an unavailable group are unknown, not gone: nothing
/// of them may be removed from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    pub types: Vec<ResourceType>,
    /// Group name → the error its discovery answered.
    pub unavailable: BTreeMap<String, String>,
}

impl Discovered {
    /// True when `group` answered (or was not asked about).
    pub fn is_available(&self, group: &str) -> bool {
        !self.unavailable.contains_key(group)
    }
}

/// Every admitted type of the cluster: the core group (`v1`) and each named group at its
/// preferred version. A HorizontalPodAutoscaler served at autoscaling/v1 and v2 is one type.
/// A named group whose discovery fails (an aggregated API whose backend is down) is reported
/// in [`Discovered::unavailable`] and the others are still discovered, as kubectl does; only
/// a failure of the core group or of the group list fails the whole discovery.
pub async fn discover(
    client: &kube::Client,
    filter: &TypeFilter,
) -> Result<Discovered, kube::Error> {
    discover_with_timeout(client, filter, GROUP_DISCOVERY_TIMEOUT).await
}

/// [`discover`] with another per-group timeout.
pub async fn discover_with_timeout(
    client: &kube::Client,
    filter: &TypeFilter,
    timeout: Duration,
) -> Result<Discovered, kube::Error> {
    let mut found = Discovered::default();
    let core = client.list_core_api_versions().await?;
    if let Some(v) = core
        .versions
        .iter()
        .find(|v| *v == "v1")
        .or(core.versions.first())
    {
        let list = client.list_core_api_resources(v).await?;
        found.types.extend(select_resources("", v, &list, filter));
    }
    let groups = client.list_api_groups().await?.groups;
    // Owned values in each future: futures borrowing from here are not `Send` enough for
    // a spawned task (rust-lang/rust#102211).
    let answers = futures::stream::iter(groups)
        .map(|group| {
            let (client, filter) = (client.clone(), filter.clone());
            async move {
                let answer = discover_in(&client, &group, &filter, timeout).await;
                (group.name, answer)
            }
        })
        .buffered(CONCURRENT_GROUP_DISCOVERIES)
        .collect::<Vec<_>>()
        .await;
    for (name, answer) in answers {
        match answer {
            Ok(types) => found.types.extend(types),
            Err(reason) => {
                found.unavailable.insert(name, reason);
            }
        }
    }
    found.types.sort();
    Ok(found)
}

/// The admitted types of some named groups (a group no longer served maps to no types):
/// used when CustomResourceDefinitions come or go, and to retry unavailable groups. One
/// request for the group list, then one per group still served; a group whose discovery
/// fails is reported unavailable.
pub async fn discover_groups(
    client: &kube::Client,
    group_names: &[String],
    filter: &TypeFilter,
    timeout: Duration,
) -> Result<(Vec<(String, Vec<ResourceType>)>, BTreeMap<String, String>), kube::Error> {
    let groups = client.list_api_groups().await?;
    let mut out = Vec::with_capacity(group_names.len());
    let mut unavailable = BTreeMap::new();
    for name in group_names {
        let answer = match groups.groups.iter().find(|g| g.name == *name) {
            Some(group) => discover_in(client, group, filter, timeout).await,
            None => Ok(Vec::new()),
        };
        match answer {
            Ok(types) => out.push((name.clone(), types)),
            Err(reason) => {
                unavailable.insert(name.clone(), reason);
            }
        }
    }
    Ok((out, unavailable))
}

/// What a rediscovery looks at: the whole cluster, or some API groups (those whose
/// CustomResourceDefinitions just changed, or that were unavailable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryScope {
    All,
    Groups(Vec<String>),
}

/// What a rediscovery of a scope found: the admitted types of each part of the scope that
/// answered, with the group it covers (`None`: every group except the unavailable ones;
/// types of a covered group that are not listed are gone), and the groups that did not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeDiscovery {
    pub covered: Vec<(Option<String>, Vec<ResourceType>)>,
    pub unavailable: BTreeMap<String, String>,
}

/// The admitted types of `scope`, each with the group it covers.
pub async fn discover_scope(
    client: &kube::Client,
    scope: &DiscoveryScope,
    filter: &TypeFilter,
    timeout: Duration,
) -> Result<ScopeDiscovery, kube::Error> {
    Ok(match scope {
        DiscoveryScope::All => {
            let found = discover_with_timeout(client, filter, timeout).await?;
            ScopeDiscovery {
                covered: vec![(None, found.types)],
                unavailable: found.unavailable,
            }
        }
        DiscoveryScope::Groups(groups) => {
            let (found, unavailable) = discover_groups(client, groups, filter, timeout).await?;
            ScopeDiscovery {
                covered: found
                    .into_iter()
                    .map(|(group, types)| (Some(group), types))
                    .collect(),
                unavailable,
            }
        }
    })
}

/// One group's admitted types, or why its discovery failed (within `timeout`).
async fn discover_in(
    client: &kube::Client,
    group: &APIGroup,
    filter: &TypeFilter,
    timeout: Duration,
) -> Result<Vec<ResourceType>, String> {
    let Some(version) = preferred_version(group) else {
        return Ok(Vec::new());
    };
    let gv = format!("{}/{}", group.name, version);
    match tokio::time::timeout(timeout, client.list_api_group_resources(&gv)).await {
        Ok(Ok(list)) => Ok(select_resources(&group.name, &version, &list, filter)),
        // A group removed between the two requests (a CRD deleted just now) is simply gone.
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(Vec::new()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer to discovery of {gv} within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: serde_json::Value) -> APIResourceList {
        serde_json::from_value(json).unwrap()
    }

    fn apps_list() -> APIResourceList {
        list(serde_json::json!({
            "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment",
                 "verbs": ["create","delete","get","list","patch","update","watch"]},
                {"name": "deployments/status", "singularName": "", "namespaced": true, "kind": "Deployment",
                 "verbs": ["get","patch","update"]},
                {"name": "controllerrevisions", "singularName": "controllerrevision", "namespaced": true,
                 "kind": "ControllerRevision", "verbs": ["get","list"]}
            ]
        }))
    }

    #[test]
    fn subresources_and_types_without_watch_are_skipped() {
        let types = select_resources("apps", "v1", &apps_list(), &TypeFilter::default());
        let names: Vec<String> = types.iter().map(|t| t.qualified_plural()).collect();
        assert_eq!(names, ["deployments.apps"]);
        assert_eq!(types[0].api_version, "apps/v1");
    }

    #[test]
    fn secrets_are_excluded_unless_asked_for_and_a_deny_list_still_wins() {
        let secret = ResourceType::new("", "v1", "Secret", "secrets", true);
        assert!(!TypeFilter::default().admits(&secret));
        assert!(TypeFilter::default().including_secrets().admits(&secret));
        assert!(TypeFilter::new(&["secrets"], &[]).admits(&secret));
        let denied = TypeFilter::new::<&str>(&[], &["secrets"]).including_secrets();
        assert!(!denied.admits(&secret));
        // A CRD called `secrets` in another group is not excluded.
        let other = ResourceType::new("vault.example.com", "v1", "Secret", "secrets", true);
        assert!(TypeFilter::default().admits(&other));
    }

    #[test]
    fn default_exclusions_drop_events_leases_endpointslices_and_componentstatuses() {
        let f = TypeFilter::default();
        let ty = |g: &str, p: &str| ResourceType::new(g, "v1", "K", p, true);
        assert!(!f.admits(&ty("", "events")));
        assert!(!f.admits(&ty("events.k8s.io", "events")));
        assert!(!f.admits(&ty("coordination.k8s.io", "leases")));
        assert!(!f.admits(&ty("discovery.k8s.io", "endpointslices")));
        assert!(!f.admits(&ty("", "componentstatuses")));
        assert!(f.admits(&ty("", "pods")));
        assert!(f.admits(&ty("apps", "deployments")));
        // A CRD that happens to be called `events` in another group is not excluded.
        assert!(f.admits(&ty("example.com", "events")));
    }

    #[test]
    fn the_allow_list_takes_plural_names_with_an_optional_group() {
        let f = TypeFilter::new(&["deployments", "certificates.cert-manager.io"], &[]);
        assert!(f.admits(&ResourceType::new(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true
        )));
        assert!(f.admits(&ResourceType::new(
            "cert-manager.io",
            "v1",
            "Certificate",
            "certificates",
            true
        )));
        assert!(!f.admits(&ResourceType::new(
            "other.io",
            "v1",
            "Certificate",
            "certificates",
            true
        )));
        assert!(!f.admits(&ResourceType::new("", "v1", "Pod", "pods", true)));
    }

    #[test]
    fn the_deny_list_wins_and_an_allowed_default_exclusion_is_watched() {
        let f = TypeFilter::new(&["leases", "pods"], &["pods"]);
        assert!(f.admits(&ResourceType::new(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true
        )));
        assert!(!f.admits(&ResourceType::new("", "v1", "Pod", "pods", true)));
        let f = TypeFilter::new::<&str>(&[], &["secrets", "certificates.cert-manager.io"]);
        assert!(!f.admits(&ResourceType::new("", "v1", "Secret", "secrets", true)));
        assert!(!f.admits(&ResourceType::new(
            "cert-manager.io",
            "v1",
            "Certificate",
            "certificates",
            true
        )));
        assert!(f.admits(&ResourceType::new(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true
        )));
    }

    #[test]
    fn namespace_filters_never_hide_cluster_scoped_objects() {
        let f = NamespaceFilter {
            include: vec!["prod".into()],
            exclude: vec![],
        };
        assert!(f.admits(Some("prod")));
        assert!(!f.admits(Some("dev")));
        assert!(f.admits(None));
        let f = NamespaceFilter {
            include: vec![],
            exclude: vec!["kube-system".into()],
        };
        assert!(!f.admits(Some("kube-system")));
        assert!(f.admits(Some("default")));
    }

    #[test]
    fn the_preferred_version_is_chosen_so_a_type_served_twice_is_watched_once() {
        let g: APIGroup = serde_json::from_value(serde_json::json!({
            "name": "autoscaling",
            "versions": [{"groupVersion": "autoscaling/v2", "version": "v2"},
                         {"groupVersion": "autoscaling/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "autoscaling/v2", "version": "v2"}
        }))
        .unwrap();
        assert_eq!(preferred_version(&g).as_deref(), Some("v2"));
    }
}
