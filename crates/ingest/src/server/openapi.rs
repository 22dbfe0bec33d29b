//! `GET /openapi.json`: the OpenAPI document of the ingest and search API, generated from
//! the wire types of sync-model and the handlers' `#[utoipa::path]` annotations, so it
//! cannot drift from what the server parses and answers.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use sync_model::api::{ClusterRemoved, ClusterSummary, ClustersResponse, ParkedResponse};
use sync_model::rbac::{
    AccessSnapshot, AggregationRule, ClusterRole, ClusterRoleBinding, LabelSelector,
    LabelSelectorRequirement, PolicyRule, ResourceType, Role, RoleBinding, RoleRef,
    ServiceAccountIssuer, Subject,
};
use sync_model::search::{
    AskAnswer, ClusterCount, Collection, CountAnswer, CountBody, GroupBy, GroupCount, SearchBody,
    SearchHit, SearchMode, SearchRequest, SearchResults, TypeMatch,
};
use sync_model::{
    Capability, CapabilitySyncPayload, ClusterId, Enrichment, ErrorBody, FieldError, Health,
    HealthStatus, Owner, ParkedInstance, ResourceId, ResourceInstance, SyncPayload, SyncResponse,
};

use super::schema::{HashesResponse, SearchAnswer};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cw ingest and search API",
        description = "Sync payloads of Kubernetes objects into a vector index, and search it. \
            Every error answers {\"error\", \"details\"}; 4xx means fix the request, 503 means \
            retry (after Retry-After when given)."
    ),
    paths(
        super::sync_instances,
        super::instance_hashes,
        super::parked_instances,
        super::capabilities::sync_capabilities,
        super::capabilities::capability_hashes,
        super::access::sync_access,
        super::search::search,
        super::search::count,
        super::search::clusters,
        super::remove_cluster,
        super::reindex::status,
        super::reindex::start,
    ),
    components(schemas(
        SyncPayload, ResourceInstance, ResourceId, SyncResponse, ParkedInstance, ErrorBody,
        FieldError, HashesResponse, ParkedResponse, CapabilitySyncPayload, Capability,
        Enrichment, SearchBody, SearchRequest, Collection, SearchMode, SearchHit,
        SearchResults, ClusterCount, AskAnswer, TypeMatch, SearchAnswer, CountBody, CountAnswer, GroupCount,
        GroupBy, Health, HealthStatus, ClusterId, ClusterSummary, ClustersResponse, Owner,
        ClusterRemoved, AccessSnapshot, Role, ClusterRole, RoleBinding, ClusterRoleBinding,
        PolicyRule, AggregationRule, LabelSelector, LabelSelectorRequirement, Subject, RoleRef,
        ResourceType, ServiceAccountIssuer, super::access::AccessSyncResponse,
        super::reindex::ReindexRequest,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The bearer token of `CW_INGEST_TOKEN` (when set, every path here needs it).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reindex_path_is_documented_with_its_answers() {
        let doc = serde_json::to_value(document()).unwrap();
        let ops = &doc["paths"][sync_model::api::REINDEX];
        for (method, ok) in [("get", "200"), ("post", "202")] {
            for status in [ok, "401", "403", "503"] {
                assert!(
                    ops[method]["responses"][status].is_object(),
                    "{method}: no {status}"
                );
            }
        }
        assert!(ops["post"]["responses"]["409"].is_object());
    }

    #[test]
    fn every_api_path_is_documented_with_its_error_answers() {
        let doc = serde_json::to_value(document()).unwrap();
        for path in [
            sync_model::api::INSTANCES_SYNC,
            sync_model::api::INSTANCES_HASHES,
            sync_model::api::INSTANCES_PARKED,
            sync_model::api::CAPABILITIES_SYNC,
            sync_model::api::CAPABILITIES_HASHES,
            sync_model::api::SEARCH,
            sync_model::api::CLUSTERS,
            sync_model::api::CLUSTER,
        ] {
            let ops = &doc["paths"][path];
            assert!(ops.is_object(), "{path} is not documented");
            for (_, op) in ops.as_object().unwrap() {
                for status in ["200", "401", "503"] {
                    assert!(op["responses"][status].is_object(), "{path}: no {status}");
                }
            }
        }
        let instance = &doc["components"]["schemas"]["ResourceInstance"];
        let required: Vec<&str> = instance["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        // The Go controller's names, and only what the parser requires.
        assert!(required.contains(&"apiVersion") && required.contains(&"createdAt"));
        assert!(
            !required.contains(&"labels"),
            "labels may be missing: {required:?}"
        );
    }
}
