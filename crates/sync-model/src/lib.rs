//! The one contract of cw: what a sender (the watcher, `cw sync-instances`, or the Go
//! controller k8s-vectordb-sync) POSTs to the ingest server, and what it answers.
//! Plain data with serde and validation; no I/O.

pub mod api;
pub mod auth;
mod capability;
mod cluster;
mod document;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod health;
mod id;
mod images;
mod instance;
mod payload;
pub mod rbac;
pub mod rules;
pub mod search;
pub mod software;
pub mod untrusted;

pub use auth::BearerToken;
pub use capability::{capability_id, Capability, CapabilitySyncPayload, Enrichment};
pub use cluster::{
    split_stored_id, ClusterId, ClusterIdError, CLUSTER_SEPARATOR, DEFAULT_CLUSTER,
    MAX_CLUSTER_ID_LEN,
};
pub use document::{content_unchanged, images_of_document, is_description_key, text_unchanged};
pub use health::{Health, HealthFilter, HealthStatus, MAX_HEALTH_REASON_BYTES};
pub use id::{IdError, ResourceId, CLUSTER_SCOPE};
pub use images::images_of;
pub use instance::{api_group_of, Owner, ResourceInstance, MAX_IMAGES, MAX_IMAGE_BYTES};
pub use payload::{cluster_or, ErrorBody, FieldError, ParkedInstance, SyncPayload, SyncResponse};
