//! The HTTP API every part speaks: the paths of the ingest server and the watcher's
//! operations endpoint, the body of the hashes answers, and how a sender's configured URL
//! becomes the server's base URL. Senders and servers both build from these, so a path is
//! written once.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// `POST`: apply a [`SyncPayload`](crate::SyncPayload) (the Go controller's endpoint).
pub const INSTANCES_SYNC: &str = "/api/v1/instances/sync";
/// `GET`: every stored instance id with its content hash ([`HashesResponse`]).
pub const INSTANCES_HASHES: &str = "/api/v1/instances/hashes";
/// `GET`: the instances the server could not store because a downstream service refuses
/// them whatever is retried ([`ParkedResponse`]); each is retried at its next upsert.
pub const INSTANCES_PARKED: &str = "/api/v1/instances/parked";
/// `GET`: every cluster in the index with its object count, last sync and last contact
/// ([`ClustersResponse`]).
pub const CLUSTERS: &str = "/api/v1/clusters";
/// `DELETE`: retire one cluster: its instances, its place on the capability types' lists
/// and its record ([`ClusterRemoved`]). [`cluster_url`] fills in the name.
pub const CLUSTER: &str = "/api/v1/clusters/{name}";
/// `POST`: build the next index generation in the server and switch to it (a token that
/// may write every cluster); `GET`: the generations and the reindex's counts.
pub const REINDEX: &str = "/api/v1/reindex";
/// `POST`: apply a [`CapabilitySyncPayload`](crate::CapabilitySyncPayload).
pub const CAPABILITIES_SYNC: &str = "/api/v1/capabilities/sync";
/// `POST`: a cluster's access rules, an [`AccessSnapshot`](crate::rbac::AccessSnapshot)
/// (RBAC objects, the types it serves, its ServiceAccount token issuer).
pub const ACCESS_SYNC: &str = "/api/v1/access/sync";
/// `GET`: every stored capability id with its content hash ([`HashesResponse`]).
pub const CAPABILITIES_HASHES: &str = "/api/v1/capabilities/hashes";
/// `POST`: a [`SearchBody`](crate::search::SearchBody).
pub const SEARCH: &str = "/api/v1/search";
/// `POST`: a [`CountBody`](crate::search::CountBody); counts by filters, no ranking.
pub const SEARCH_COUNT: &str = "/api/v1/search/count";
/// The MCP server for agents (Streamable HTTP), on `cw serve` and `cw run`.
pub const MCP: &str = "/mcp";
/// `POST` on the watcher's operations address: relist and make the store equal the cluster.
pub const RESYNC: &str = "/api/v1/resync";
/// Liveness, readiness and metrics, on every server of cw.
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
/// `GET`: the OpenAPI document of the ingest and search API.
pub const OPENAPI: &str = "/openapi.json";

/// The port `cw serve` and `cw run` listen on unless told otherwise (`--port`, `CW_PORT`),
/// and so where a client looks for a server when none is named.
pub const DEFAULT_PORT: u16 = 3000;

/// Where a client looks for a cw server when none is named: this machine, [`DEFAULT_PORT`].
pub fn default_server_url() -> String {
    format!("http://localhost:{DEFAULT_PORT}")
}

/// The query of both hashes endpoints: `?cluster=prod-eu` answers for that cluster only;
/// without it, for the server's default cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashesQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// One cluster of the index, as `GET /api/v1/clusters` lists it. The times are kept in the
/// store (they survive restarts and are the same on every server of one store); the ages
/// are the server's, so that a client's clock does not matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    pub id: crate::ClusterId,
    /// Instances stored for the cluster.
    pub objects: usize,
    /// RFC 3339 time of the latest sync that carried changes of the cluster; absent when
    /// none is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    /// Seconds from `last_sync` to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_age_secs: Option<u64>,
    /// RFC 3339 time the cluster's watcher was last heard from (a sync, a heartbeat, a
    /// hashes read); absent when never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<String>,
    /// Seconds from `last_contact` to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_age_secs: Option<u64>,
    /// Not heard from for longer than the server's threshold
    /// ([`ClustersResponse::stale_after_secs`]), or never: its objects may be out of date.
    #[serde(default)]
    pub stale: bool,
    /// Objects by coarse health (`Current`, `Failed`, ...), when the index records health.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub health: std::collections::BTreeMap<String, usize>,
}

/// How long ago an age in seconds was, as `cw clusters` and MCP `list_clusters` say it:
/// `12s ago`, `4m ago`, `3h ago`, `2d ago` (whole units, rounded down).
pub fn age_text(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3_599 => format!("{}m ago", secs / 60),
        3_600..=86_399 => format!("{}h ago", secs / 3_600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// The answer of `GET /api/v1/clusters`, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClustersResponse {
    #[serde(default)]
    pub clusters: Vec<ClusterSummary>,
    /// A cluster not heard from for longer than this is stale (`CW_STALE_AFTER_SECS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after_secs: Option<u64>,
}

/// The answer of `DELETE /api/v1/clusters/{name}`: what went with the cluster. Removing a
/// cluster the index does not hold (or no longer holds) answers the same, with zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClusterRemoved {
    pub cluster: crate::ClusterId,
    /// Its instances deleted.
    pub instances: usize,
    /// Resource types other clusters still serve, which it left.
    pub types_left: usize,
    /// Resource types only it served, deleted.
    pub types_deleted: usize,
    /// Whether its record (last sync, last contact) was there to delete.
    pub record: bool,
}

/// The URL of [`CLUSTER`] for `cluster` (cluster ids need no escaping).
pub fn cluster_url(base: &str, cluster: &crate::ClusterId) -> String {
    url(base, &CLUSTER.replace("{name}", cluster.as_str()))
}

/// The answer of both hashes endpoints: `{"hashes": {id: contentHash}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash",
    deserialize = "K: Deserialize<'de> + Eq + Hash"
))]
pub struct HashesResponse<K = String> {
    #[serde(default)]
    pub hashes: HashMap<K, String>,
}

/// The answer of `GET /api/v1/instances/parked`: every parked instance, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParkedResponse {
    #[serde(default)]
    pub parked: Vec<crate::ParkedInstance>,
}

/// The server's base URL from what a sender is configured with: a base URL
/// (`http://host:port`) or, as the Go controller's `REST_ENDPOINT` is, the full sync URL
/// (`http://host:port/api/v1/instances/sync`). Trailing slashes are ignored.
pub fn base_url(endpoint: &str) -> &str {
    let trimmed = endpoint.trim().trim_end_matches('/');
    trimmed.strip_suffix(INSTANCES_SYNC).unwrap_or(trimmed)
}

/// `base` (as [`base_url`] makes it) joined with one of the paths above.
pub fn url(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

/// The URL of a hashes endpoint for `cluster` (cluster ids need no escaping).
pub fn hashes_url(base: &str, path: &str, cluster: Option<&crate::ClusterId>) -> String {
    match cluster {
        Some(c) => format!("{base}{path}?cluster={c}"),
        None => url(base, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_go_controllers_sync_url_and_a_base_url_name_the_same_server() {
        for endpoint in [
            "http://ingest:3000",
            "http://ingest:3000/",
            "http://ingest:3000/api/v1/instances/sync",
            "http://ingest:3000/api/v1/instances/sync/",
        ] {
            assert_eq!(base_url(endpoint), "http://ingest:3000", "{endpoint}");
        }
        assert_eq!(
            url(base_url("http://h/prefix/"), INSTANCES_HASHES),
            "http://h/prefix/api/v1/instances/hashes"
        );
    }

    #[test]
    fn ages_are_said_in_their_largest_whole_unit() {
        assert_eq!(age_text(0), "0s ago");
        assert_eq!(age_text(59), "59s ago");
        assert_eq!(age_text(60), "1m ago");
        assert_eq!(age_text(3 * 3_600 + 59), "3h ago");
        assert_eq!(age_text(2 * 86_400 + 5), "2d ago");
    }

    #[test]
    fn a_clusters_url_names_it() {
        let c = crate::ClusterId::new("gen-a").unwrap();
        assert_eq!(
            cluster_url("http://cw:3000", &c),
            "http://cw:3000/api/v1/clusters/gen-a"
        );
    }

    #[test]
    fn hashes_answers_parse_without_the_field_as_empty() {
        let h: HashesResponse = serde_json::from_str("{}").unwrap();
        assert!(h.hashes.is_empty());
        let h: HashesResponse = serde_json::from_str(r#"{"hashes":{"a":"1"}}"#).unwrap();
        assert_eq!(h.hashes["a"], "1");
    }
}
