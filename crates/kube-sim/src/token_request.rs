//! The TokenRequest API (`POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`, what
//! `kubectl create token` calls): a ServiceAccount token signed by the simulator's issuer,
//! with kube-apiserver's defaults and limits
//! (<https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/>).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::access::service_accounts_type;
use crate::error::SimError;
use crate::issuer::TokenIssuer;
use crate::store::Store;

/// `spec.expirationSeconds` when the request has none.
pub const DEFAULT_EXPIRATION_SECS: i64 = 3600;
/// The shortest token kube-apiserver issues (its validation's 10 minutes).
pub const MIN_EXPIRATION_SECS: i64 = 600;
/// The longest: 2^32 seconds.
const MAX_EXPIRATION_SECS: i64 = 1 << 32;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A token for ServiceAccount `namespace/name` (404 if it does not exist) valid `ttl_secs`;
/// with no `audiences`, for the API server's own.
pub fn issue(
    store: &Store,
    issuer: &TokenIssuer,
    namespace: &str,
    name: &str,
    audiences: &[String],
    ttl_secs: u64,
) -> Result<(String, crate::issuer::ServiceAccountClaims), SimError> {
    let not_found = || SimError::NotFound(format!("serviceaccounts {name:?} not found"));
    let ty = service_accounts_type(store).ok_or_else(not_found)?;
    let sa = store.get(&ty, namespace, name).map_err(|_| not_found())?;
    let uid = sa.value()["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    issuer.issue(namespace, name, &uid, audiences, now(), ttl_secs)
}

fn invalid(name: &str, field: &str, value: &Value, why: &str) -> SimError {
    SimError::Invalid(format!(
        "TokenRequest.authentication.k8s.io {name:?} is invalid: {field}: Invalid value: {value}: {why}"
    ))
}

/// Answers a TokenRequest body: the request with its defaults filled in and `status.token`,
/// `status.expirationTimestamp` set.
pub fn create(
    store: &Store,
    issuer: &TokenIssuer,
    namespace: &str,
    name: &str,
    mut request: Value,
) -> Result<Value, SimError> {
    if request["kind"] != "TokenRequest" {
        return Err(SimError::BadRequest(format!(
            "a TokenRequest of authentication.k8s.io/v1 is expected, not {}",
            request["kind"]
        )));
    }
    let spec = &request["spec"];
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECS,
        v => v
            .as_i64()
            .ok_or_else(|| invalid(name, "spec.expirationSeconds", v, "must be an integer"))?,
    };
    if seconds < MIN_EXPIRATION_SECS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > MAX_EXPIRATION_SECS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !spec["boundObjectRef"].is_null() {
        return Err(SimError::BadRequest(
            "kube-sim does not bind tokens to objects (spec.boundObjectRef)".into(),
        ));
    }
    let audiences: Vec<String> =
        serde_json::from_value::<Option<Vec<String>>>(spec["audiences"].clone())
            .map_err(|_| {
                invalid(
                    name,
                    "spec.audiences",
                    &spec["audiences"],
                    "must be strings",
                )
            })?
            .unwrap_or_default();
    let audiences = if audiences.is_empty() {
        issuer.api_audiences().to_vec()
    } else {
        audiences
    };
    let (token, claims) = issue(store, issuer, namespace, name, &audiences, seconds as u64)?;
    let time = |secs: u64| {
        DateTime::<Utc>::from_timestamp(secs as i64, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["metadata"] = json!({
        "name": name, "namespace": namespace, "creationTimestamp": time(claims.iat),
    });
    request["spec"] = json!({
        "audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null,
    });
    request["status"] = json!({"token": token, "expirationTimestamp": time(claims.exp)});
    Ok(request)
}
