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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Arc;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    /// An API server that answers the issuer paths with the status in `status` (200: the
    /// documents), and a kube client of it.
    async fn api_server(status: Arc<AtomicU16>) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        async fn answer(status: &AtomicU16, body: Value) -> Response {
            match status.load(Ordering::SeqCst) {
                200 => Json(body).into_response(),
                code => {
                    let code = StatusCode::from_u16(code).expect("a status");
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "reason": "Forbidden", "code": code.as_u16()});
                    (code, Json(status)).into_response()
                }
            }
        }
        let app = Router::new()
            .route(
                DISCOVERY_PATH,
                get(|State(s): State<Arc<AtomicU16>>| async move {
                    let jwks_uri = "https://unreachable.example/openid/v1/jwks";
                    let config =
                        json!({"issuer": "https://kubernetes.default.svc", "jwks_uri": jwks_uri});
                    answer(&s, config).await
                }),
            )
            .route(
                JWKS_PATH,
                get(|State(s): State<Arc<AtomicU16>>| async move {
                    answer(&s, json!({"keys": [{"kty": "EC", "kid": "k1"}]})).await
                }),
            )
            .with_state(status);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
    }

    #[tokio::test]
    async fn the_issuer_and_its_keys_are_read_from_the_api_server_not_the_jwks_uri() {
        let client = api_server(Arc::new(AtomicU16::new(200))).await;
        let issuer = read_issuer(&client).await.expect("the issuer");
        assert_eq!(issuer.issuer, "https://kubernetes.default.svc");
        assert_eq!(issuer.jwks["keys"][0]["kid"], "k1");
    }

    #[tokio::test]
    async fn a_refused_read_names_the_binding_to_add_and_a_missing_one_says_so() {
        let status = Arc::new(AtomicU16::new(403));
        let client = api_server(status.clone()).await;
        let e = read_issuer(&client).await.unwrap_err();
        assert!(matches!(e, IssuerError::Forbidden { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("system:service-account-issuer-discovery"),
            "{e}"
        );
        status.store(404, Ordering::SeqCst);
        let e = read_issuer(&client).await.unwrap_err();
        assert!(matches!(e, IssuerError::NotServed { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn an_unreadable_issuer_is_published_as_none_and_a_later_failure_keeps_the_last_read() {
        let status = Arc::new(AtomicU16::new(403));
        let client = api_server(status.clone()).await;
        let (tx, mut rx) = watch::channel(IssuerState::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(follow_issuer(
            client,
            Duration::from_millis(50),
            tx,
            cancel.clone(),
        ));
        rx.changed().await.unwrap();
        assert_eq!(
            *rx.borrow_and_update(),
            IssuerState {
                asked: true,
                issuer: None
            },
            "asked, and none: the snapshot may go without it"
        );
        status.store(200, Ordering::SeqCst);
        rx.changed().await.unwrap();
        let read = rx.borrow_and_update().issuer.clone().expect("read");
        assert_eq!(read.issuer, "https://kubernetes.default.svc");
        status.store(403, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            rx.borrow().issuer.as_ref(),
            Some(&read),
            "a passing refusal keeps the keys"
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
