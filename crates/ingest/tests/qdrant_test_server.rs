//! The Qdrant test server itself (crates/testkit/qdrant): it must refuse what the real
//! Qdrant refuses, in Qdrant's error envelope, or the store's tests would prove nothing; and
//! it must answer in the real success envelope.

use serde_json::{json, Value};
use testkit::QdrantServer;

async fn start(key: Option<&'static str>) -> QdrantServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::task::spawn_blocking(move || QdrantServer::start_with_key(key))
        .await
        .expect("start the Qdrant test server")
}

async fn call(
    server: &QdrantServer,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(
        method.parse().expect("method"),
        format!("{}{path}", server.url()),
    );
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    if let Some(k) = key {
        req = req.header("api-key", k);
    }
    let resp = req.send().await.expect("the test server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `(status, error text)` of a refused call, checking Qdrant's error envelope.
fn refusal(answer: (u16, Value)) -> (u16, String) {
    let (status, body) = answer;
    assert!(body["time"].is_number(), "no time in {body}");
    assert!(
        body.get("result").is_none(),
        "an error carries no result: {body}"
    );
    let error = body["status"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not Qdrant's error envelope: {body}"))
        .to_string();
    (status, error)
}

const CREATE: &str = r#"{"vectors": {"size": 4, "distance": "Cosine"}}"#;

/// The answer of `POST /collections/c/points/count`.
async fn count_of_c(server: &QdrantServer) -> Value {
    call(
        server,
        "POST",
        "/collections/c/points/count",
        Some("{}"),
        None,
    )
    .await
    .1
}

#[tokio::test]
async fn answers_come_in_qdrants_envelope() {
    let server = start(None).await;
    let (status, body) = call(&server, "PUT", "/collections/c", Some(CREATE), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!(true));
    assert_eq!(body["status"], "ok");
    assert!(body["time"].is_number());
    let count = count_of_c(&server).await;
    assert_eq!(count["result"], json!({"count": 0}));
}

#[tokio::test]
async fn malformed_requests_are_refused_with_400_naming_the_problem() {
    let server = start(None).await;
    assert_eq!(
        call(&server, "PUT", "/collections/c", Some(CREATE), None)
            .await
            .0,
        200
    );
    let cases = [
        // An unknown field (the REST models forbid extra fields).
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": 1, "vectors": [1.0, 0.0, 0.0, 0.0]}]}"#,
            "vectors",
        ),
        // A point id that is neither an unsigned integer nor a UUID.
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": "default/v1/Pod/a", "vector": [1.0, 0.0, 0.0, 0.0]}]}"#,
            "UUID",
        ),
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": -3, "vector": [1.0, 0.0, 0.0, 0.0]}]}"#,
            "unsigned",
        ),
        // A vector of the wrong dimension.
        (
            "PUT",
            "/collections/c/points",
            r#"{"points": [{"id": 1, "vector": [1.0, 0.0]}]}"#,
            "dimension",
        ),
        // A filter condition that is not one.
        (
            "POST",
            "/collections/c/points/scroll",
            r#"{"filter": {"must": [{"key": "kind", "match": {"equals": "Pod"}}]}}"#,
            "Format error",
        ),
        // A wrong type.
        (
            "POST",
            "/collections/c/points/query",
            r#"{"query": [1.0, 0.0, 0.0, 0.0], "limit": "ten"}"#,
            "limit",
        ),
        // Not JSON at all.
        (
            "POST",
            "/collections/c/points/count",
            r#"{"exact": tru"#,
            "Format error",
        ),
        // A distance Qdrant does not have.
        (
            "PUT",
            "/collections/d",
            r#"{"vectors": {"size": 4, "distance": "Cosinus"}}"#,
            "distance",
        ),
        // An unknown query parameter.
        (
            "POST",
            "/collections/c/points/count?wiat=true",
            "{}",
            "wiat",
        ),
    ];
    for (method, path, body, names) in cases {
        let (status, error) = refusal(call(&server, method, path, Some(body), None).await);
        assert_eq!(status, 400, "{method} {path} {body}: {error}");
        assert!(
            error.contains(names),
            "{method} {path} {body}: {error:?} should name {names:?}"
        );
    }
    // Nothing was written by the refused upserts.
    let count = count_of_c(&server).await;
    assert_eq!(count["result"]["count"], 0);
}

#[tokio::test]
async fn a_missing_collection_is_a_404_and_an_existing_one_a_409() {
    let server = start(None).await;
    let (status, error) = refusal(call(&server, "GET", "/collections/nope", None, None).await);
    assert_eq!(status, 404);
    assert!(error.contains("doesn't exist"), "{error}");
    assert_eq!(
        call(&server, "PUT", "/collections/c", Some(CREATE), None)
            .await
            .0,
        200
    );
    let (status, error) = refusal(call(&server, "PUT", "/collections/c", Some(CREATE), None).await);
    assert_eq!(status, 409);
    assert!(error.contains("already exists"), "{error}");
}

#[tokio::test]
async fn with_an_api_key_every_endpoint_but_the_probes_needs_it() {
    let server = start(Some("k1")).await;
    assert_eq!(
        refusal(call(&server, "GET", "/collections", None, None).await).0,
        401
    );
    assert_eq!(
        refusal(call(&server, "GET", "/collections", None, Some("k2")).await).0,
        403
    );
    assert_eq!(
        call(&server, "GET", "/collections", None, Some("k1"))
            .await
            .0,
        200
    );
    let probe = reqwest::get(format!("{}/readyz", server.url()))
        .await
        .unwrap();
    assert_eq!(probe.status().as_u16(), 200);
}
