//! ServiceAccount tokens of the fleet's clusters: each cluster's watcher sends its API
//! server's issuer and public keys (`sync_model::rbac::ServiceAccountIssuer`), and a pod's
//! projected token is checked here locally. Several clusters may share an issuer string
//! (every kind cluster is `https://kubernetes.default.svc.cluster.local`) but not their
//! keys: a token's identity holds only in the clusters whose keys verify its signature.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;
use sync_model::rbac::{ServiceAccountIssuer, UserInfo, SERVICE_ACCOUNT_PREFIX};
use sync_model::ClusterId;

use super::jwt::{self, Claims, JwtError, KeySet};

/// The audience a ServiceAccount token must name unless configured otherwise
/// (`kubectl create token SA --audience cw`).
pub const DEFAULT_SERVICE_ACCOUNT_AUDIENCE: &str = "cw";

/// What the API servers sign ServiceAccount tokens with (kube-apiserver accepts RSA and
/// ECDSA keys for `--service-account-signing-key-file`).
const SIGNING_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

struct Entry {
    issuer: String,
    keys: Arc<KeySet>,
}

/// Each cluster's ServiceAccount issuer and keys, as its watcher last sent them. Cheap to
/// clone: clones share one registry.
#[derive(Clone, Default)]
pub struct ServiceAccountIssuers {
    clusters: Arc<RwLock<BTreeMap<ClusterId, Entry>>>,
}

impl std::fmt::Debug for ServiceAccountIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clusters = self.read();
        let list: Vec<(&str, &str)> = clusters
            .iter()
            .map(|(c, e)| (c.as_str(), e.issuer.as_str()))
            .collect();
        write!(f, "ServiceAccountIssuers({list:?})")
    }
}

/// A ServiceAccount token's verified identity: the user and the clusters it holds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountIdentity {
    pub user: UserInfo,
    pub clusters: BTreeSet<ClusterId>,
}

impl ServiceAccountIssuers {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ClusterId, Entry>> {
        self.clusters.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `cluster`'s issuer as its watcher sent it; `None` forgets it (the cluster sent
    /// none, or was removed): its tokens are refused from now on.
    pub fn set(&self, cluster: ClusterId, issuer: Option<ServiceAccountIssuer>) {
        let mut clusters = self.clusters.write().unwrap_or_else(|p| p.into_inner());
        match issuer.filter(|i| !i.issuer.is_empty()) {
            Some(i) => {
                let keys = KeySet::from_jwks(&i.jwks);
                tracing::debug!(%cluster, issuer = %i.issuer, keys = keys.len(), "ServiceAccount issuer set");
                clusters.insert(
                    cluster,
                    Entry {
                        issuer: i.issuer,
                        keys: Arc::new(keys),
                    },
                );
            }
            None => {
                clusters.remove(&cluster);
            }
        }
    }

    /// Whether some cluster's tokens carry `issuer` as their `iss`.
    pub fn knows_issuer(&self, issuer: &str) -> bool {
        self.read().values().any(|e| e.issuer == issuer)
    }

    /// The identity of a token whose `iss` is `issuer`: the clusters of that issuer whose
    /// keys verify it, the audience one of `audiences`, the user its `sub` names.
    pub fn verify(
        &self,
        token: &str,
        header: &Header,
        issuer: &str,
        audiences: &[String],
    ) -> Result<ServiceAccountIdentity, JwtError> {
        let candidates: Vec<(ClusterId, Arc<KeySet>)> = self
            .read()
            .iter()
            .filter(|(_, e)| e.issuer == issuer)
            .map(|(c, e)| (c.clone(), e.keys.clone()))
            .collect();
        let mut clusters = BTreeSet::new();
        let mut claims = None;
        // The most telling refusal: a claims error (the signature verified) over a bad
        // signature.
        let mut refusal = JwtError::BadSignature;
        for (cluster, keys) in candidates {
            match jwt::verify(token, header, &keys, SIGNING_ALGS) {
                Ok(c) => {
                    clusters.insert(cluster);
                    claims.get_or_insert(c);
                }
                Err(JwtError::BadSignature) => {}
                Err(e) => refusal = e,
            }
        }
        let claims = claims.ok_or(refusal)?;
        jwt::check_audience(&claims, audiences)?;
        Ok(ServiceAccountIdentity {
            user: service_account_of(&claims)?,
            clusters,
        })
    }
}

/// `sub` = `system:serviceaccount:NS:NAME`, agreeing with the `kubernetes.io` claim when
/// the token has one.
fn service_account_of(claims: &Claims) -> Result<UserInfo, JwtError> {
    let sub = jwt::string_claim(claims, "sub")?;
    let not_sa = || JwtError::Invalid("the token's sub is not a ServiceAccount".into());
    let rest = sub
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .ok_or_else(not_sa)?;
    let (namespace, name) = rest.split_once(':').ok_or_else(not_sa)?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return Err(not_sa());
    }
    if let Some(k8s) = claims.get("kubernetes.io") {
        let ns = k8s.get("namespace").and_then(Value::as_str);
        let sa = k8s.pointer("/serviceaccount/name").and_then(Value::as_str);
        if ns != Some(namespace) || sa != Some(name) {
            return Err(JwtError::Invalid(
                "the token's kubernetes.io claim names another ServiceAccount than its sub".into(),
            ));
        }
    }
    Ok(UserInfo::service_account(namespace, name))
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{now, TestKey};
    use super::*;
    use serde_json::json;

    const KIND: &str = "https://kubernetes.default.svc.cluster.local";

    fn cluster(id: &str) -> ClusterId {
        ClusterId::new(id).unwrap()
    }

    fn issuer(key: &TestKey) -> Option<ServiceAccountIssuer> {
        Some(ServiceAccountIssuer {
            issuer: KIND.into(),
            jwks: key.jwks(),
        })
    }

    fn sa_claims(aud: &str) -> Value {
        json!({
            "iss": KIND, "aud": [aud], "exp": now() + 600,
            "sub": "system:serviceaccount:team-a:reader",
            "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "reader", "uid": "u"}},
        })
    }

    fn verify(
        reg: &ServiceAccountIssuers,
        token: &str,
    ) -> Result<ServiceAccountIdentity, JwtError> {
        let header = jwt::peek(token).unwrap().header;
        reg.verify(token, &header, KIND, &["cw".to_string()])
    }

    #[test]
    fn a_token_holds_only_in_the_clusters_whose_keys_sign_it() {
        // Two kind clusters: one issuer string, their own keys (same kid, as kind's are
        // derived alike).
        let a = TestKey::ec("k");
        let b = TestKey::ec("k");
        let reg = ServiceAccountIssuers::new();
        reg.set(cluster("kind-a"), issuer(&a));
        reg.set(cluster("kind-b"), issuer(&b));
        assert!(reg.knows_issuer(KIND));

        let from_a = verify(&reg, &a.sign(&sa_claims("cw"))).unwrap();
        assert_eq!(from_a.clusters, BTreeSet::from([cluster("kind-a")]));
        assert_eq!(
            from_a.user,
            UserInfo::service_account("team-a", "reader"),
            "sub names the ServiceAccount"
        );
        let from_b = verify(&reg, &b.sign(&sa_claims("cw"))).unwrap();
        assert_eq!(from_b.clusters, BTreeSet::from([cluster("kind-b")]));

        // Both clusters trust the same key (one cluster's keys sent twice): both.
        reg.set(cluster("kind-c"), issuer(&a));
        let both = verify(&reg, &a.sign(&sa_claims("cw"))).unwrap();
        assert_eq!(
            both.clusters,
            BTreeSet::from([cluster("kind-a"), cluster("kind-c")])
        );

        // A cluster that forgets its issuer no longer takes its tokens.
        reg.set(cluster("kind-b"), None);
        assert_eq!(
            verify(&reg, &b.sign(&sa_claims("cw"))),
            Err(JwtError::BadSignature)
        );
    }

    /// Issuers with one cluster, `a`, whose tokens `a`'s key signs.
    fn cluster_a_with_key() -> (TestKey, ServiceAccountIssuers) {
        let a = TestKey::ec("k");
        let reg = ServiceAccountIssuers::new();
        reg.set(cluster("a"), issuer(&a));
        (a, reg)
    }

    #[test]
    fn a_service_account_token_needs_the_audience_and_a_live_expiry() {
        let (a, reg) = cluster_a_with_key();
        assert!(matches!(
            verify(&reg, &a.sign(&sa_claims("https://kubernetes.default.svc"))),
            Err(JwtError::WrongAudience { .. })
        ));
        let mut expired = sa_claims("cw");
        expired["exp"] = json!(now() - 3600);
        assert_eq!(verify(&reg, &a.sign(&expired)), Err(JwtError::Expired));
        // Signed by nobody's key: a bad signature, whatever its claims.
        assert_eq!(
            verify(&reg, &TestKey::ec("k").sign(&expired)),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn the_subject_must_name_a_service_account() {
        let (a, reg) = cluster_a_with_key();
        let mut user = sa_claims("cw");
        user["sub"] = json!("alice");
        assert!(verify(&reg, &a.sign(&user)).is_err());
        let mut mismatch = sa_claims("cw");
        mismatch["kubernetes.io"]["namespace"] = json!("team-b");
        assert!(verify(&reg, &a.sign(&mismatch)).is_err());
    }
}
