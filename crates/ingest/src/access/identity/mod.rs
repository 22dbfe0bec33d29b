//! Who is asking: every request's [`Caller`], produced only by [`Authenticator::authenticate`]
//! from its bearer token: the shared token and the tokens file's operator lines
//! ([`credentials`]: operators and watchers, who read everything), the tokens file's user
//! lines, OIDC ID tokens ([`oidc`]) and the fleet's ServiceAccount tokens
//! ([`service_accounts`]): users, whom each cluster's RBAC scopes. A token none of these
//! accepts is a [`Refusal`] (401) that says why. Handlers take the [`Caller`] as an
//! extractor, so none can forget to ask.

pub mod credentials;
pub mod jwt;
pub mod oidc;
pub mod service_accounts;
#[cfg(test)]
mod test_keys;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sync_model::rbac::UserInfo;
use sync_model::{BearerToken, ClusterId};

pub use credentials::{Access, Credentials, TokenHolder, TokensFile};
pub use jwt::JwtError;
pub use oidc::{OidcConfig, OidcVerifier};
pub use service_accounts::{ServiceAccountIssuers, DEFAULT_SERVICE_ACCOUNT_AUDIENCE};

/// The identity of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The shared token, a tokens-file line `*`, a cluster list or `read-only`, or anyone
    /// when no authentication is configured: reads everything, writes what [`Access`] says.
    Operator(Access),
    /// An identity scoped by RBAC; never writes.
    User {
        user: UserInfo,
        /// `None`: the identity holds in every cluster (OIDC users, the tokens file's
        /// users); `Some`: only in the clusters whose ServiceAccount issuer signed the
        /// token.
        clusters: Option<BTreeSet<ClusterId>>,
    },
}

impl Caller {
    pub fn may_write(&self, cluster: &ClusterId) -> bool {
        match self {
            Caller::Operator(access) => access.may_write(cluster),
            Caller::User { .. } => false,
        }
    }

    /// The operator's access; `None` for a user.
    pub fn operator(&self) -> Option<&Access> {
        match self {
            Caller::Operator(access) => Some(access),
            Caller::User { .. } => None,
        }
    }

    /// What it may write, for an error message.
    pub fn describe_writes(&self) -> String {
        match self {
            Caller::Operator(access) => access.describe(),
            Caller::User { user, .. } => format!("nothing (the user {:?} only reads)", user.name),
        }
    }
}

/// Why a bearer token is refused (401). Never carries token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no bearer token")]
    NoToken,
    #[error("unknown token: neither the shared token, one of the tokens file, nor a JWT")]
    UnknownToken,
    #[error("the token's issuer {0:?} is neither the OIDC issuer nor any cluster's ServiceAccount issuer")]
    UnknownIssuer(String),
    /// A JWT of a known issuer that does not pass: `method` is `oidc` or `service-account`.
    #[error("{method} token refused: {reason}")]
    Jwt {
        method: &'static str,
        reason: JwtError,
    },
}

impl Refusal {
    /// The metric's `outcome` label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::UnknownToken => "unknown_token",
            Refusal::UnknownIssuer(_) => "unknown_issuer",
            Refusal::Jwt { reason, .. } => match reason {
                JwtError::Expired | JwtError::NotYetValid => "expired",
                JwtError::BadSignature => "bad_signature",
                JwtError::WrongAudience { .. } => "wrong_audience",
                JwtError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
                JwtError::Malformed(_) | JwtError::MissingClaim(_) | JwtError::Invalid(_) => {
                    "invalid"
                }
            },
        }
    }

    /// The metric's `method` label.
    fn method(&self) -> &'static str {
        match self {
            Refusal::NoToken => "none",
            Refusal::UnknownToken => "token",
            Refusal::UnknownIssuer(_) => "jwt",
            Refusal::Jwt { method, .. } => method,
        }
    }
}

/// Labels of `cw_auth_decisions_total`: `method` (token, tokens_file, oidc,
/// service-account, jwt, none) and `outcome` (accepted or why refused).
pub type DecisionLabels = [(&'static str, &'static str); 2];

/// What the authenticator checks beyond the opaque tokens.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// OIDC ID tokens of this issuer; none without it.
    pub oidc: Option<Arc<OidcVerifier>>,
    /// A ServiceAccount token's `aud` must name one of these.
    pub service_account_audiences: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            oidc: None,
            service_account_audiences: vec![DEFAULT_SERVICE_ACCOUNT_AUDIENCE.to_string()],
        }
    }
}

/// Turns a request's `Authorization` header into its [`Caller`].
pub struct Authenticator {
    credentials: Credentials,
    identity: IdentityConfig,
    service_accounts: ServiceAccountIssuers,
    decisions: Family<DecisionLabels, Counter>,
}

impl Authenticator {
    pub fn new(credentials: Credentials, identity: IdentityConfig) -> Self {
        Authenticator {
            credentials,
            identity,
            service_accounts: ServiceAccountIssuers::new(),
            decisions: Family::default(),
        }
    }

    /// Counts decisions in `decisions` (the server's `cw_auth_decisions_total`).
    pub fn with_metrics(mut self, decisions: Family<DecisionLabels, Counter>) -> Self {
        self.decisions = decisions;
        self
    }

    /// The registry of the fleet's ServiceAccount issuers, filled as watchers send them.
    pub fn service_accounts(&self) -> &ServiceAccountIssuers {
        &self.service_accounts
    }

    /// True when requests must carry a token: a shared token, a tokens file or OIDC is
    /// configured. Without any, every request is an operator of everything, as before
    /// authentication is set up.
    pub fn required(&self) -> bool {
        self.credentials.required() || self.identity.oidc.is_some()
    }

    /// The caller of a request with this `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Refusal> {
        if !self.required() {
            return Ok(Caller::Operator(Access::All));
        }
        let decided = self
            .decide(BearerToken::bearer_of(authorization).trim())
            .await;
        let (method, outcome) = match &decided {
            Ok((method, caller)) => {
                match caller {
                    Caller::Operator(access) => {
                        tracing::debug!(method, may_write = %access.describe(), "caller authenticated")
                    }
                    Caller::User { user, clusters } => {
                        tracing::debug!(method, user = %user.name, groups = ?user.groups, ?clusters, "caller authenticated")
                    }
                }
                (*method, "accepted")
            }
            Err(refusal) => {
                tracing::debug!(method = refusal.method(), reason = %refusal, "bearer token refused");
                (refusal.method(), refusal.outcome())
            }
        };
        self.decisions
            .get_or_create(&[("method", method), ("outcome", outcome)])
            .inc();
        decided.map(|(_, caller)| caller)
    }

    /// The caller and the method that recognised them.
    async fn decide(&self, token: &str) -> Result<(&'static str, Caller), Refusal> {
        if token.is_empty() {
            return Err(Refusal::NoToken);
        }
        // The opaque tokens first, always all of them (constant time whatever the token).
        match self.credentials.holder(token) {
            Some(TokenHolder::Operator(access)) => return Ok(("token", Caller::Operator(access))),
            Some(TokenHolder::User(user)) => {
                return Ok((
                    "tokens_file",
                    Caller::User {
                        user,
                        clusters: None,
                    },
                ))
            }
            None => {}
        }
        if !jwt::looks_like_jwt(token) {
            return Err(Refusal::UnknownToken);
        }
        let unverified = jwt::peek(token).map_err(|reason| Refusal::Jwt {
            method: "jwt",
            reason,
        })?;
        let Some(issuer) = unverified.issuer else {
            return Err(Refusal::Jwt {
                method: "jwt",
                reason: JwtError::MissingClaim("iss".into()),
            });
        };
        let (method, verified) =
            if let Some(oidc) = self.identity.oidc.as_ref().filter(|o| o.issuer() == issuer) {
                let user = oidc.verify(token, &unverified.header).await;
                (
                    "oidc",
                    user.map(|user| Caller::User {
                        user,
                        clusters: None,
                    }),
                )
            } else if self.service_accounts.knows_issuer(&issuer) {
                let sa = self.service_accounts.verify(
                    token,
                    &unverified.header,
                    &issuer,
                    &self.identity.service_account_audiences,
                );
                let caller = |sa: service_accounts::ServiceAccountIdentity| Caller::User {
                    user: sa.user,
                    clusters: Some(sa.clusters),
                };
                ("service-account", sa.map(caller))
            } else {
                return Err(Refusal::UnknownIssuer(issuer));
            };
        let caller = verified.map_err(|reason| Refusal::Jwt { method, reason })?;
        Ok((method, caller))
    }
}

/// The request's [`Caller`]: the one the authentication layer found (see
/// `AppState::auth_layer`), else authenticated here. Its rejection, a [`Refusal`], is
/// answered 401 (`server::error`).
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let authenticator = Arc::<Authenticator>::from_ref(state);
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = authenticator.authenticate(authorization).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{now, TestKey};
    use super::*;
    use serde_json::json;
    use sync_model::rbac::ServiceAccountIssuer;

    fn cluster(id: &str) -> ClusterId {
        ClusterId::new(id).unwrap()
    }

    fn shared(token: &str) -> Credentials {
        Credentials {
            shared: BearerToken::new(token),
            file: None,
        }
    }

    #[tokio::test]
    async fn without_any_authentication_everyone_is_an_operator_of_everything() {
        let auth = Authenticator::new(Credentials::default(), IdentityConfig::default());
        assert_eq!(
            auth.authenticate(None).await,
            Ok(Caller::Operator(Access::All))
        );
    }

    #[tokio::test]
    async fn each_refusal_says_why_and_is_counted() {
        let decisions = Family::<DecisionLabels, Counter>::default();
        let auth = Authenticator::new(shared("s3cret"), IdentityConfig::default())
            .with_metrics(decisions.clone());
        let key = TestKey::ec("k");
        auth.service_accounts().set(
            cluster("a"),
            Some(ServiceAccountIssuer {
                issuer: "https://a".into(),
                jwks: key.jwks(),
            }),
        );
        assert_eq!(
            auth.authenticate(Some("Bearer s3cret")).await,
            Ok(Caller::Operator(Access::All))
        );
        assert_eq!(auth.authenticate(None).await, Err(Refusal::NoToken));
        assert_eq!(
            auth.authenticate(Some("Bearer nope")).await,
            Err(Refusal::UnknownToken)
        );
        let stranger = key.sign(&json!({"iss": "https://b", "exp": now() + 60}));
        let refused = auth
            .authenticate(Some(&format!("Bearer {stranger}")))
            .await
            .unwrap_err();
        assert_eq!(refused, Refusal::UnknownIssuer("https://b".into()));
        assert!(!refused.to_string().contains(&stranger));
        let sa = key.sign(&json!({
            "iss": "https://a", "aud": "cw", "exp": now() + 60,
            "sub": "system:serviceaccount:ns:bot",
        }));
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {sa}"))).await,
            Ok(Caller::User {
                user: UserInfo::service_account("ns", "bot"),
                clusters: Some(BTreeSet::from([cluster("a")])),
            })
        );
        let count = |method, outcome| {
            decisions
                .get_or_create(&[("method", method), ("outcome", outcome)])
                .get()
        };
        assert_eq!(count("token", "accepted"), 1);
        assert_eq!(count("none", "no_token"), 1);
        assert_eq!(count("token", "unknown_token"), 1);
        assert_eq!(count("jwt", "unknown_issuer"), 1);
        assert_eq!(count("service-account", "accepted"), 1);
    }

    #[test]
    fn users_write_nothing() {
        let user = Caller::User {
            user: UserInfo::default(),
            clusters: None,
        };
        assert!(!user.may_write(&cluster("a")));
        assert!(user.operator().is_none());
        assert!(Caller::Operator(Access::ReadOnly).operator().is_some());
    }
}
