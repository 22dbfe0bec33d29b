//! Who is looking at a page: the token a person signed in with, kept in the `cw_session`
//! cookie (HttpOnly, SameSite=Strict, Secure over https) and checked on every page by the
//! same authenticator as the API's bearer tokens, so that a revoked or expired token stops
//! working at once. The cookie is read here only: the JSON API and `/mcp` stay bearer-only.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::pages::{render, Chrome};
use crate::paths::{OVERVIEW, SIGN_IN};
use crate::state::Web;

pub const SESSION_COOKIE: &str = "cw_session";

/// The longest token accepted from the form (an OIDC ID token with many groups fits).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The session's token, when the request carries the cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| URL_SAFE_NO_PAD.decode(value.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|t| !t.is_empty())
}

/// Whether the browser reached us over https, directly or through a proxy that says so.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

fn secure_flag(headers: &HeaderMap) -> &'static str {
    if over_https(headers) {
        "; Secure"
    } else {
        ""
    }
}

/// The `Set-Cookie` value that keeps `token`.
pub fn session_cookie(token: &str, headers: &HeaderMap) -> String {
    format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{}",
        URL_SAFE_NO_PAD.encode(token.as_bytes()),
        secure_flag(headers)
    )
}

/// The `Set-Cookie` value that ends the session.
pub fn cleared_cookie(headers: &HeaderMap) -> String {
    format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure_flag(headers)
    )
}

fn with_cookie(mut res: Response, cookie: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// Pages go on with the session's [`Caller`](ingest::access::identity::Caller) in the
/// request (the handlers take it as their extractor); without a session the authenticator
/// accepts, to the sign-in (a cookie it refuses is cleared on the way).
pub async fn require_session(State(web): State<Web>, mut req: Request, next: Next) -> Response {
    let token = session_token(req.headers());
    let authorization = token.as_deref().map(|t| format!("Bearer {t}"));
    match web
        .state
        .authenticator()
        .authenticate(authorization.as_deref())
        .await
    {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(refusal) => {
            tracing::debug!(reason = %refusal, "page asked without a valid session");
            let to_sign_in = Redirect::to(SIGN_IN).into_response();
            if token.is_some() {
                with_cookie(to_sign_in, cleared_cookie(req.headers()))
            } else {
                to_sign_in
            }
        }
    }
}

#[derive(askama::Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    /// Why the last token was refused.
    error: Option<String>,
    /// False when the server asks no token: every page is open.
    required: bool,
}

/// `GET /sign-in`: the form.
pub async fn sign_in_form(State(web): State<Web>) -> Response {
    let required = web.state.authenticator().required();
    render(
        StatusCode::OK,
        &SignInPage {
            chrome: Chrome::signed_out(),
            error: None,
            required,
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

/// Whether a form was posted from a page of this server (a sign-in posted from another site
/// would sign the browser in as someone else's identity). Browsers say where a request comes
/// from in `Sec-Fetch-Site`; one that does not, in `Origin` (which is `null` under the pages'
/// `Referrer-Policy: no-referrer`, so only a named origin is compared: with this host, or the
/// host a proxy in front passes on as X-Forwarded-Host). Clients that send neither are not
/// browsers posting across sites.
pub fn posted_from_here(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return matches!(site.trim(), "same-origin" | "none");
    }
    let Some(origin) = value(header::ORIGIN.as_str()).filter(|o| *o != "null") else {
        return true;
    };
    let Some(origin_host) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(value)
        .filter_map(|v| v.split(',').next())
        .any(|h| h.trim().eq_ignore_ascii_case(origin_host))
}

/// `POST /sign-in`: the token is checked at once; accepted, it is kept in the session
/// cookie and the browser goes to the overview; refused, the form again with why (401).
pub async fn sign_in(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let required = web.state.authenticator().required();
    let token = form
        .map(|Form(f)| f.token.trim().to_string())
        .unwrap_or_default();
    let refused = |error: String| {
        render(
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                chrome: Chrome::signed_out(),
                error: Some(error),
                required,
            },
        )
    };
    if !posted_from_here(&headers) {
        return render(
            StatusCode::FORBIDDEN,
            &SignInPage {
                chrome: Chrome::signed_out(),
                error: Some("this sign-in was posted from another site: sign in here".into()),
                required,
            },
        );
    }
    if token.len() > MAX_TOKEN_BYTES {
        return refused(format!(
            "the token is longer than any token cw accepts ({MAX_TOKEN_BYTES} bytes)"
        ));
    }
    match web
        .state
        .authenticator()
        .authenticate(Some(&format!("Bearer {token}")))
        .await
    {
        Ok(_) => with_cookie(
            Redirect::to(OVERVIEW).into_response(),
            session_cookie(&token, &headers),
        ),
        Err(refusal) => refused(format!("signed out: {refusal}")),
    }
}

/// `POST /sign-out`: the cookie is cleared; to the sign-in.
pub async fn sign_out(headers: HeaderMap) -> Response {
    with_cookie(
        Redirect::to(SIGN_IN).into_response(),
        cleared_cookie(&headers),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_only_over_https() {
        let plain = session_cookie("tok en;", &HeaderMap::new());
        assert!(plain.starts_with("cw_session="), "{plain}");
        assert!(plain.contains("; HttpOnly"), "{plain}");
        assert!(plain.contains("; SameSite=Strict"), "{plain}");
        assert!(plain.contains("; Path=/"), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(
            !plain.contains("tok en;"),
            "the raw token is never the cookie's value"
        );
        let proxied = session_cookie("t", &headers(&[("x-forwarded-proto", "https")]));
        assert!(proxied.ends_with("; Secure"), "{proxied}");
        let cleared = cleared_cookie(&HeaderMap::new());
        assert!(cleared.contains("Max-Age=0") && cleared.contains("HttpOnly"));
    }

    #[test]
    fn a_sign_in_posted_from_another_site_is_not_from_here() {
        let here = |origin: &str| {
            posted_from_here(&headers(&[("host", "cw.example:3000"), ("origin", origin)]))
        };
        assert!(here("http://cw.example:3000"));
        assert!(here("https://cw.example:3000"));
        assert!(!here("https://evil.example"));
        let fetched = |site: &str| {
            posted_from_here(&headers(&[
                ("host", "cw.example"),
                ("origin", "null"),
                ("sec-fetch-site", site),
            ]))
        };
        assert!(fetched("same-origin"));
        assert!(!fetched("cross-site"));
        assert!(!fetched("same-site"));
        assert!(posted_from_here(&headers(&[("host", "cw.example")])));
        assert!(posted_from_here(&headers(&[
            ("host", "cw-svc:3000"),
            ("x-forwarded-host", "cw.example"),
            ("origin", "https://cw.example"),
        ])));
    }

    #[test]
    fn the_token_comes_back_from_its_cookie_among_others() {
        let set = session_cookie("s3cret token", &HeaderMap::new());
        let value = set.split(';').next().unwrap();
        let h = headers(&[("cookie", &format!("theme=dark; {value}; other=1"))]);
        assert_eq!(session_token(&h).as_deref(), Some("s3cret token"));
        assert_eq!(
            session_token(&headers(&[("cookie", "cw_session=%%%")])),
            None
        );
        assert_eq!(session_token(&HeaderMap::new()), None);
    }
}
