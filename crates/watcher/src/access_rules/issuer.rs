//! The cluster's ServiceAccount token issuer, for the access snapshot: the `issuer` of the
//! API server's `/.well-known/openid-configuration` and the keys of its `/openid/v1/jwks`.
//! Both are read from the API server itself with the watcher's own credentials: the issuer
//! URL (and the `jwks_uri` the discovery document names, which `--service-account-jwks-uri`
//! may point elsewhere) is often not reachable from the watcher, while the API server always
//! serves its keys at `/openid/v1/jwks`
//! (<https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#service-account-issuer-discovery>).
//! Reading them needs the built-in `system:service-account-issuer-discovery` ClusterRole.

use std::time::Duration;

use serde_json::Value;
use sync_model::rbac::ServiceAccountIssuer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the issuer's keys are read again (they rotate rarely; a new key must be known
/// before tokens signed with it are refused for long).
pub const ISSUER_REFRESH: Duration = Duration::from_secs(600);

const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/openid/v1/jwks";
/// One read of either document.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the issuer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error(
        "the API server refuses {path} (HTTP 403): bind this watcher's ServiceAccount to the \
         built-in ClusterRole system:service-account-issuer-discovery"
    )]
    Forbidden { path: &'static str },
    #[error(
        "the API server does not serve {path} (HTTP 404): ServiceAccount issuer discovery is \
         off (kube-apiserver --service-account-issuer)"
    )]
    NotServed { path: &'static str },
    #[error("reading {path} from the API server: {source}")]
    Kube {
        path: &'static str,
        source: kube::Error,
    },
    #[error("no answer from the API server to {path} within {READ_TIMEOUT:?}")]
    Timeout { path: &'static str },
    #[error("{path} holds no {what}")]
    Invalid {
        path: &'static str,
        what: &'static str,
    },
}

/// Reads the issuer and its key set from the API server.
pub async fn read_issuer(client: &kube::Client) -> Result<ServiceAccountIssuer, IssuerError> {
    let config = get_json(client, DISCOVERY_PATH).await?;
    let issuer = config
        .get("issuer")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or(IssuerError::Invalid {
            path: DISCOVERY_PATH,
            what: "issuer",
        })?
        .to_string();
    let jwks = get_json(client, JWKS_PATH).await?;
    if !jwks.get("keys").is_some_and(Value::is_array) {
        return Err(IssuerError::Invalid {
            path: JWKS_PATH,
            what: "key list (`keys`)",
        });
    }
    Ok(ServiceAccountIssuer { issuer, jwks })
}

async fn get_json(client: &kube::Client, path: &'static str) -> Result<Value, IssuerError> {
    let request = http::Request::get(path)
        .body(Vec::new())
        // A constant path and no headers: the request is always well formed.
        .map_err(|e| IssuerError::Kube {
            path,
            source: kube::Error::HttpError(e),
        })?;
    match tokio::time::timeout(READ_TIMEOUT, client.request::<Value>(request)).await {
        Err(_) => Err(IssuerError::Timeout { path }),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => Err(IssuerError::Forbidden { path }),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Err(IssuerError::NotServed { path }),
        Ok(Err(source)) => Err(IssuerError::Kube { path, source }),
    }
}

/// What is known of the issuer: whether it was asked for yet, and the last one read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IssuerState {
    pub asked: bool,
    pub issuer: Option<ServiceAccountIssuer>,
}

/// Reads the issuer now and every `refresh`, publishing what it knows to `state`, until
/// `cancel` fires. A failed read keeps the last issuer read (a passing outage must not
/// lock out every ServiceAccount); the first failure of a run of them is logged as a
/// warning naming the fix, the others at debug.
pub async fn follow_issuer(
    client: kube::Client,
    refresh: Duration,
    state: watch::Sender<IssuerState>,
    cancel: CancellationToken,
) {
    let mut failing = false;
    loop {
        let Some(read) = cancel.run_until_cancelled(read_issuer(&client)).await else {
            return;
        };
        let issuer = match read {
            Ok(issuer) => {
                if std::mem::take(&mut failing) {
                    info!(issuer = %issuer.issuer, "the ServiceAccount token issuer is readable again");
                }
                Some(issuer)
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!(
                        error = %e,
                        "cannot read this cluster's ServiceAccount token issuer: access rules are \
                         sent without it, and the ingest server cannot accept this cluster's \
                         ServiceAccount tokens"
                    );
                } else {
                    debug!(error = %e, "the ServiceAccount token issuer is still unreadable");
                }
                state.borrow().issuer.clone()
            }
        };
        state.send_if_modified(|s| {
            let next = IssuerState {
                asked: true,
                issuer,
            };
            let changed = *s != next;
            *s = next;
            changed
        });
        if cancel
            .run_until_cancelled(tokio::time::sleep(refresh))
            .await
            .is_none()
        {
            return;
        }
    }
}
