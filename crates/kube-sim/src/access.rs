//! Who is asking and what they may do, as kube-apiserver's filters decide it before a handler
//! runs: authentication (the admin token, or a ServiceAccount token this simulator issued),
//! impersonation (`Impersonate-User`, `-Group`, `-Uid`), and RBAC authorization from the
//! simulator's own Roles, ClusterRoles and bindings, with Kubernetes' 401 and 403 Statuses.
//! See <https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>.
//!
//! A simulator without an admin token stays open: a request without a ServiceAccount token or
//! impersonation headers is the superuser's, as before.

use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sync_model::rbac::authorizer::{Authorizer, ResourceAttributes};
use sync_model::rbac::{
    AccessSnapshot, ClusterRole, ClusterRoleBinding, ResourceType, Role, RoleBinding,
    ServiceAccountIssuer, UserInfo, ALL_AUTHENTICATED, SERVICE_ACCOUNT_PREFIX,
};

use crate::error::SimError;
use crate::issuer::{looks_like_jwt, TokenIssuer};
use crate::store::{ListQuery, Store};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group kube-apiserver leaves out of an impersonated user's groups when it is named.
const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";

/// The identity a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin token (or anyone, where the simulator has none): every request is allowed,
    /// as for a member of `system:masters`.
    Superuser,
    /// A user whose requests RBAC decides.
    User(UserInfo),
}

/// The authorizer built from the stored RBAC objects, and what it was built from.
struct Cached {
    /// The resourceVersion the objects were read at.
    pos: u64,
    registry_generation: u64,
    authorizer: Arc<Authorizer>,
}

/// One simulator's authentication and authorization.
pub struct Access {
    pub issuer: TokenIssuer,
    admin_token: Option<String>,
    cache: Mutex<Option<Cached>>,
}

fn unauthorized() -> SimError {
    SimError::Unauthorized("Unauthorized".into())
}

impl Access {
    pub fn new(issuer: TokenIssuer, admin_token: Option<String>) -> Self {
        Access {
            issuer,
            admin_token,
            cache: Mutex::new(None),
        }
    }

    /// The caller a request's bearer token names: the admin token is the superuser, a
    /// ServiceAccount token of this simulator (for its API audiences, unexpired, its
    /// ServiceAccount still there with the same uid) is that ServiceAccount; without an admin
    /// token every other request is the superuser's; anything else is 401.
    pub fn authenticate(&self, store: &Store, headers: &HeaderMap) -> Result<Caller, SimError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match (bearer, self.admin_token.as_deref()) {
            (Some(b), Some(admin)) if b == admin => Ok(Caller::Superuser),
            (Some(b), _) if looks_like_jwt(b) => self.service_account(store, b),
            (_, None) => Ok(Caller::Superuser),
            _ => Err(unauthorized()),
        }
    }

    fn service_account(&self, store: &Store, token: &str) -> Result<Caller, SimError> {
        let claims = self.issuer.verify(token).map_err(|e| {
            tracing::debug!(error = %e, "refused a bearer token");
            unauthorized()
        })?;
        let k = &claims.kubernetes;
        // kube-apiserver refuses the token of a deleted (or deleted and recreated) account.
        let exists = service_accounts_type(store)
            .and_then(|ty| store.get(&ty, &k.namespace, &k.serviceaccount.name).ok())
            .is_some_and(|sa| sa.value()["metadata"]["uid"] == k.serviceaccount.uid.as_str());
        if !exists {
            return Err(unauthorized());
        }
        Ok(Caller::User(UserInfo::service_account(
            &k.namespace,
            &k.serviceaccount.name,
        )))
    }

    /// The caller the request runs as after its impersonation headers, each of which the
    /// authenticated caller must be allowed to `impersonate` (kube-apiserver's
    /// `WithImpersonation` filter); the request itself is then authorized as that user.
    pub fn impersonate(
        &self,
        store: &Store,
        caller: Caller,
        headers: &HeaderMap,
    ) -> Result<Caller, SimError> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let users = values("impersonate-user");
        let groups = values("impersonate-group");
        let uids = values("impersonate-uid");
        let Some(user) = users.first() else {
            if groups.is_empty() && uids.is_empty() {
                return Ok(caller);
            }
            return Err(SimError::Internal(
                "requested impersonation of groups or a uid without impersonating a user".into(),
            ));
        };
        let mut checks: Vec<(&str, &str, &str)> = Vec::new();
        let mut impersonated = UserInfo {
            name: user.clone(),
            groups: groups.clone(),
        };
        match user
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, name)) => {
                checks.push(("serviceaccounts", ns, name));
                if groups.is_empty() {
                    impersonated.groups = UserInfo::service_account(ns, name).groups;
                    impersonated.groups.retain(|g| g != ALL_AUTHENTICATED);
                }
            }
            None => checks.push(("users", "", user)),
        }
        checks.extend(groups.iter().map(|g| ("groups", "", g.as_str())));
        checks.extend(uids.iter().map(|u| ("uids", "", u.as_str())));
        for (resource, namespace, name) in checks {
            let attrs = ResourceAttributes {
                verb: "impersonate",
                api_group: "",
                resource,
                subresource: "",
                namespace,
                name,
            };
            self.authorize(store, &caller, &attrs)?;
        }
        let named = |g: &String| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED;
        if impersonated.name != ANONYMOUS && !impersonated.groups.iter().any(named) {
            impersonated.groups.push(ALL_AUTHENTICATED.to_string());
        }
        Ok(Caller::User(impersonated))
    }

    /// The superuser may do anything; a user what the stored RBAC objects allow them, else
    /// 403 with kube-apiserver's message.
    pub fn authorize(
        &self,
        store: &Store,
        caller: &Caller,
        attrs: &ResourceAttributes<'_>,
    ) -> Result<(), SimError> {
        let Caller::User(user) = caller else {
            return Ok(());
        };
        if self.authorizer(store).allows(user, attrs) {
            return Ok(());
        }
        Err(forbidden(user, attrs))
    }

    /// The authorizer of the current RBAC objects, rebuilt only when one of them (or the set
    /// of served types) changed since it was built.
    fn authorizer(&self, store: &Store) -> Arc<Authorizer> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let generation = store.registry_generation();
        if let Some(c) = cache
            .as_mut()
            .filter(|c| c.registry_generation == generation)
        {
            // A forgotten history (compaction, restart) is a reason to rebuild, not an error.
            if let Ok((events, next)) = store.events_after(c.pos) {
                if !events.iter().any(|e| e.key.0 == RBAC_GROUP) {
                    c.pos = next;
                    return c.authorizer.clone();
                }
            }
        }
        let pos = store.resource_version();
        let authorizer = Arc::new(Authorizer::new(&self.snapshot(store)));
        *cache = Some(Cached {
            pos,
            registry_generation: generation,
            authorizer: authorizer.clone(),
        });
        authorizer
    }

    /// The simulator's access rules in the shape a watcher sends them to cw.
    pub fn snapshot(&self, store: &Store) -> AccessSnapshot {
        let objects = |plural: &str| -> Vec<Value> {
            let Some(ty) = store.find_type(RBAC_GROUP, "v1", plural) else {
                return Vec::new();
            };
            store
                .list(&ty, &ListQuery::default())
                .map(|p| p.items.iter().map(|o| o.value()).collect())
                .unwrap_or_default()
        };
        let meta = |o: &Value, f: &str| o["metadata"][f].as_str().unwrap_or_default().to_string();
        AccessSnapshot {
            cluster: None,
            roles: objects("roles")
                .iter()
                .map(|o| Role {
                    namespace: meta(o, "namespace"),
                    name: meta(o, "name"),
                    rules: field(o, "rules"),
                })
                .collect(),
            cluster_roles: objects("clusterroles")
                .iter()
                .map(|o| ClusterRole {
                    name: meta(o, "name"),
                    labels: field(&o["metadata"], "labels"),
                    rules: field(o, "rules"),
                    aggregation_rule: field(o, "aggregationRule"),
                })
                .collect(),
            role_bindings: objects("rolebindings")
                .iter()
                .map(|o| RoleBinding {
                    namespace: meta(o, "namespace"),
                    name: meta(o, "name"),
                    role_ref: field(o, "roleRef"),
                    subjects: field(o, "subjects"),
                })
                .collect(),
            cluster_role_bindings: objects("clusterrolebindings")
                .iter()
                .map(|o| ClusterRoleBinding {
                    name: meta(o, "name"),
                    role_ref: field(o, "roleRef"),
                    subjects: field(o, "subjects"),
                })
                .collect(),
            types: store
                .types()
                .iter()
                .map(|t| ResourceType {
                    group: t.group.clone(),
                    plural: t.plural.clone(),
                    kind: t.kind.clone(),
                    namespaced: t.namespaced,
                })
                .collect(),
            issuer: Some(ServiceAccountIssuer {
                issuer: self.issuer.issuer().to_string(),
                jwks: self.issuer.jwks(),
            }),
        }
    }
}

/// A field of a stored object in the contract's shape; a malformed one (which validation let
/// through) counts as absent, as it grants nothing.
fn field<T: DeserializeOwned + Default>(o: &Value, name: &str) -> T {
    serde_json::from_value(o[name].clone()).unwrap_or_default()
}

pub fn service_accounts_type(store: &Store) -> Option<Arc<crate::resources::ResourceType>> {
    store.find_type("", "v1", "serviceaccounts")
}

/// kube-apiserver's 403 for a denied request (`responsewriters.Forbidden`):
/// `pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "ns"`.
pub fn forbidden(user: &UserInfo, a: &ResourceAttributes<'_>) -> SimError {
    let resource = if a.subresource.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let reason = format!(
        "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
        user.name, a.verb, resource, a.api_group
    );
    let qualified = if a.api_group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {reason}")
    } else {
        format!("{qualified} {:?} is forbidden: {reason}", a.name)
    };
    SimError::Forbidden(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_are_kube_apiservers() {
        let sa = UserInfo::service_account("ns", "sa");
        let x = UserInfo {
            name: "x".into(),
            groups: vec![],
        };
        let cases = [
            (
                &sa,
                ResourceAttributes {
                    verb: "list",
                    resource: "pods",
                    namespace: "ns",
                    ..Default::default()
                },
                r#"pods is forbidden: User "system:serviceaccount:ns:sa" cannot list resource "pods" in API group "" in the namespace "ns""#,
            ),
            (
                &x,
                ResourceAttributes {
                    verb: "impersonate",
                    resource: "users",
                    name: "alice",
                    ..Default::default()
                },
                r#"users "alice" is forbidden: User "x" cannot impersonate resource "users" in API group "" at the cluster scope"#,
            ),
            (
                &x,
                ResourceAttributes {
                    verb: "update",
                    api_group: "apps",
                    resource: "deployments",
                    subresource: "scale",
                    namespace: "ns",
                    name: "web",
                },
                r#"deployments.apps "web" is forbidden: User "x" cannot update resource "deployments/scale" in API group "apps" in the namespace "ns""#,
            ),
        ];
        for (user, attrs, expected) in cases {
            assert_eq!(forbidden(user, &attrs).to_string(), expected);
        }
    }
}
