//! `get_resource`'s live reads over kube: the object's API resource found by discovery of
//! its one group version, the object as dynamic JSON, and the Events of its namespace whose
//! involvedObject it is. The summary (and what is never returned) is the `mcp` crate's.

use async_trait::async_trait;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::Client;
use mcp::{ClusterError, LiveCluster, ObjectRef};
use serde_json::Value;

/// Events read per namespace at most, newest kept by the summary.
const EVENT_PAGE: u32 = 500;

pub struct KubeCluster {
    client: Client,
    /// What the client was built from: a client acting as another user is built from it
    /// ([`LiveCluster::as_user`]); `None` when the client came ready-made.
    config: Option<kube::Config>,
}

impl KubeCluster {
    pub fn new(client: Client) -> Self {
        KubeCluster {
            client,
            config: None,
        }
    }

    /// A reader that can also act as the callers it serves (impersonation).
    pub fn from_config(config: kube::Config) -> Result<Self, kube::Error> {
        Ok(KubeCluster {
            client: Client::try_from(config.clone())?,
            config: Some(config),
        })
    }

    async fn api_of(&self, target: &ObjectRef) -> Result<Api<DynamicObject>, ClusterError> {
        let (group, version) = match target.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", target.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let (resource, _caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| match e {
                kube::Error::Discovery(_) => {
                    ClusterError::UnknownKind(format!("{} in {}", target.kind, target.api_version))
                }
                kube::Error::Api(s) if s.code == 404 => {
                    ClusterError::UnknownKind(format!("{} in {}", target.kind, target.api_version))
                }
                other => from_kube(other, target),
            })?;
        Ok(self.api(&resource, target.namespace.as_deref()))
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }
}

#[async_trait]
impl LiveCluster for KubeCluster {
    /// A reader with `Impersonate-User` and `Impersonate-Group` headers: the cluster's own
    /// authorizer decides what the caller may read, and the connection's credential must be
    /// allowed to impersonate (deploy/fleet/live-reader.yaml). Its client is built on its
    /// first read ([`ActingAs`]): every `/mcp` request of a user gets one per connection,
    /// and most read nothing live.
    fn as_user(
        &self,
        user: &sync_model::rbac::UserInfo,
    ) -> Option<std::sync::Arc<dyn LiveCluster>> {
        let mut config = self.config.clone()?;
        config.auth_info.impersonate = Some(user.name.clone());
        config.auth_info.impersonate_groups = Some(
            user.groups
                .iter()
                .filter(|g| g.as_str() != sync_model::rbac::ALL_AUTHENTICATED)
                .cloned()
                .collect(),
        );
        Some(std::sync::Arc::new(ActingAs {
            config,
            cluster: std::sync::OnceLock::new(),
        }))
    }

    async fn get(&self, target: &ObjectRef) -> Result<Value, ClusterError> {
        let api = self.api_of(target).await?;
        let object = api
            .get(&target.name)
            .await
            .map_err(|e| from_kube(e, target))?;
        serde_json::to_value(object).map_err(|e| ClusterError::Unavailable(e.to_string()))
    }

    async fn events(&self, target: &ObjectRef) -> Result<Vec<Value>, ClusterError> {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Event"), "events");
        let api = self.api(&resource, target.namespace.as_deref());
        // Filtered here rather than by an involvedObject field selector, which not every
        // API server (the simulator included) supports.
        let list = api
            .list(&ListParams::default().limit(EVENT_PAGE))
            .await
            .map_err(|e| from_kube(e, target))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .filter(|e| {
                let o = &e["involvedObject"];
                o["name"] == target.name.as_str() && o["kind"] == target.kind.as_str()
            })
            .collect())
    }

    async fn api_version_of(&self, kind: &str) -> Result<Option<String>, ClusterError> {
        // The core group first (Secrets, ConfigMaps, Pods: the kinds named most), then the
        // whole discovery.
        if let Ok(core) = kube::discovery::group(&self.client, "").await {
            if let Some((resource, _)) = core.recommended_kind(kind) {
                return Ok(Some(resource.api_version));
            }
        }
        let discovery = kube::Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let found = discovery
            .groups()
            .find_map(|g| g.recommended_kind(kind))
            .map(|(resource, _)| resource.api_version);
        Ok(found)
    }
}

fn from_kube(e: kube::Error, target: &ObjectRef) -> ClusterError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ClusterError::NotFound(target.display()),
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => ClusterError::Forbidden(s.message),
        other => ClusterError::Unavailable(other.to_string()),
    }
}

/// A connection acting as one caller ([`LiveCluster::as_user`]), its client built when it
/// first reads.
struct ActingAs {
    config: kube::Config,
    cluster: std::sync::OnceLock<Result<KubeCluster, String>>,
}

impl ActingAs {
    fn cluster(&self) -> Result<&KubeCluster, ClusterError> {
        self.cluster
            .get_or_init(|| {
                Client::try_from(self.config.clone())
                    .map(KubeCluster::new)
                    .map_err(|e| format!("cannot build a client acting as the caller: {e}"))
            })
            .as_ref()
            .map_err(|e| ClusterError::Unavailable(e.clone()))
    }
}

#[async_trait]
impl LiveCluster for ActingAs {
    async fn get(&self, target: &ObjectRef) -> Result<Value, ClusterError> {
        self.cluster()?.get(target).await
    }

    async fn events(&self, target: &ObjectRef) -> Result<Vec<Value>, ClusterError> {
        self.cluster()?.events(target).await
    }

    async fn api_version_of(&self, kind: &str) -> Result<Option<String>, ClusterError> {
        self.cluster()?.api_version_of(kind).await
    }
}
