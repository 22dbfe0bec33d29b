//! The pages' own style and script, built into the binary and served under names that hold
//! their content hash, so that browsers keep them for a year and a new build is fetched at
//! once. Nothing is fetched from elsewhere at run time.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::paths::ASSET_PREFIX;

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

pub struct Asset {
    /// `app.3f9a0c1b2d4e.css`
    pub file: String,
    /// `/static/app.3f9a0c1b2d4e.css`
    pub path: String,
    etag: String,
    body: &'static str,
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
        let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
        let file = format!("{stem}.{hash}.{ext}");
        Asset {
            path: format!("{ASSET_PREFIX}{file}"),
            etag: format!("\"{hash}\""),
            file,
            body,
            content_type,
        }
    }
}

pub static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("app", "css", CSS, "text/css; charset=utf-8"));
pub static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("app", "js", JS, "text/javascript; charset=utf-8"));

/// `GET /static/{file}`: the asset of that name, 304 when the browser holds it already.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = [&*STYLE, &*SCRIPT].into_iter().find(|a| a.file == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cached = [
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        (header::ETAG, asset.etag.as_str()),
    ];
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut res = if held {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    for (name, value) in cached {
        if let Ok(v) = HeaderValue::from_str(value) {
            res.headers_mut().insert(name, v);
        }
    }
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    res
}
