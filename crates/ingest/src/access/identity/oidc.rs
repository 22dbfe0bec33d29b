//! OIDC ID tokens, checked locally with the settings kube-apiserver takes (`--oidc-*`): the
//! issuer URL (`iss` must equal it), the client id (`aud` must name it), the username and
//! groups claims and their prefixes, the signing algorithms, and the issuer's keys from its
//! discovery document (`<issuer>/.well-known/openid-configuration` → `jwks_uri`) or from a
//! file. Keys are fetched at start, again every [`KEY_REFRESH_INTERVAL`], and at most every
//! [`UNKNOWN_KEY_REFRESH_MIN`] when a token names a key not yet known (a rotation).
//! <https://kubernetes.io/docs/reference/access-authn-authz/authentication/#openid-connect-tokens>

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;
use sync_model::rbac::{UserInfo, ALL_AUTHENTICATED};

use super::jwt::{self, Claims, JwtError, KeySet};

/// The claim that names the user unless configured otherwise (kube-apiserver's default).
pub const DEFAULT_USERNAME_CLAIM: &str = "sub";
/// The signing algorithms accepted unless configured otherwise (kube-apiserver's default).
pub const DEFAULT_SIGNING_ALGS: &str = "RS256";
/// How often the issuer's keys are fetched again.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// The least time between two fetches caused by tokens naming an unknown key.
pub const UNKNOWN_KEY_REFRESH_MIN: Duration = Duration::from_secs(10);
/// The prefix value that turns the username prefix off (kube-apiserver's `-`).
pub const NO_PREFIX: &str = "-";

/// The OIDC settings (kube-apiserver's `--oidc-*` flags).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `iss` must equal it; the discovery document is read under it.
    pub issuer_url: String,
    /// `aud` must name it.
    pub client_id: String,
    pub username_claim: String,
    /// `None`: the issuer URL and `#` unless the claim is `email`; `-`: none.
    pub username_prefix: Option<String>,
    /// No groups unless set.
    pub groups_claim: Option<String>,
    pub groups_prefix: Option<String>,
    pub signing_algs: Vec<Algorithm>,
    /// Keys from this JSON Web Key Set file instead of the issuer's discovery.
    pub jwks_file: Option<PathBuf>,
    /// CA certificates (PEM) the issuer's TLS certificate is checked against, beside the
    /// system's.
    pub ca_file: Option<PathBuf>,
}

impl OidcConfig {
    /// The settings for `issuer_url` and `client_id`, every other one at its default.
    pub fn new(issuer_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        OidcConfig {
            issuer_url: issuer_url.into(),
            client_id: client_id.into(),
            username_claim: DEFAULT_USERNAME_CLAIM.into(),
            username_prefix: None,
            groups_claim: None,
            groups_prefix: None,
            signing_algs: vec![Algorithm::RS256],
            jwks_file: None,
            ca_file: None,
        }
    }

    /// The prefix put before every username (kube-apiserver's rule).
    pub fn effective_username_prefix(&self) -> String {
        match self.username_prefix.as_deref() {
            Some(NO_PREFIX) => String::new(),
            Some(p) => p.to_string(),
            None if self.username_claim == "email" => String::new(),
            None => format!("{}#", self.issuer_url),
        }
    }
}

/// Why the OIDC settings or keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("--oidc-issuer-url must be an https URL (or http on loopback for tests), got {0:?}")]
    IssuerUrl(String),
    #[error("--oidc-client-id is required with --oidc-issuer-url")]
    NoClientId,
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(String),
    #[error("the issuer's keys: {0}")]
    Keys(String),
}

/// Where the keys come from.
enum KeySource {
    Discovery { http: reqwest::Client },
    File(PathBuf),
}

/// When keys were last fetched and tried.
#[derive(Default)]
struct Fetched {
    ok_at: Option<Instant>,
    tried_at: Option<Instant>,
}

/// Checks OIDC ID tokens of one issuer.
pub struct OidcVerifier {
    config: OidcConfig,
    source: KeySource,
    keys: RwLock<Arc<KeySet>>,
    /// One fetch at a time; the times say whether another is due.
    fetched: tokio::sync::Mutex<Fetched>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OidcVerifier({})", self.config.issuer_url)
    }
}

impl OidcVerifier {
    /// A verifier with no keys yet: [`OidcVerifier::refresh`] fetches them (the first token
    /// does it too).
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        if config.client_id.trim().is_empty() {
            return Err(OidcError::NoClientId);
        }
        let url = reqwest::Url::parse(&config.issuer_url)
            .map_err(|_| OidcError::IssuerUrl(config.issuer_url.clone()))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(OidcError::IssuerUrl(config.issuer_url.clone()));
        }
        let source = match &config.jwks_file {
            Some(path) => KeySource::File(path.clone()),
            None => {
                let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
                if let Some(ca) = &config.ca_file {
                    let pem = std::fs::read(ca).map_err(|source| OidcError::File {
                        path: ca.clone(),
                        source,
                    })?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| OidcError::Http(format!("{}: {e}", ca.display())))?;
                    for cert in certs {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                let http = builder
                    .build()
                    .map_err(|e| OidcError::Http(e.to_string()))?;
                KeySource::Discovery { http }
            }
        };
        Ok(OidcVerifier {
            config,
            source,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetched: tokio::sync::Mutex::new(Fetched::default()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer_url
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Fetches the keys now; the keys last fetched stay when this fails. Returns how many
    /// usable keys the issuer has.
    pub async fn refresh(&self) -> Result<usize, OidcError> {
        let mut fetched = self.fetched.lock().await;
        self.fetch(&mut fetched).await
    }

    async fn fetch(&self, fetched: &mut Fetched) -> Result<usize, OidcError> {
        fetched.tried_at = Some(Instant::now());
        let jwks = match &self.source {
            KeySource::File(path) => {
                let text = std::fs::read(path).map_err(|source| OidcError::File {
                    path: path.clone(),
                    source,
                })?;
                serde_json::from_slice(&text)
                    .map_err(|e| OidcError::Keys(format!("{}: {e}", path.display())))?
            }
            KeySource::Discovery { http } => self.discover(http).await?,
        };
        let keys = KeySet::from_jwks(&jwks);
        if keys.is_empty() {
            return Err(OidcError::Keys("no usable RSA or EC signing key".into()));
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        fetched.ok_at = Some(Instant::now());
        tracing::info!(issuer = %self.config.issuer_url, keys = n, "OIDC issuer keys fetched");
        Ok(n)
    }

    /// The discovery document's `jwks_uri`, then the key set there.
    async fn discover(&self, http: &reqwest::Client) -> Result<Value, OidcError> {
        let base = self.config.issuer_url.trim_end_matches('/');
        let url = format!("{base}/.well-known/openid-configuration");
        let doc: Value = get_json(http, &url).await?;
        // OpenID Connect Discovery 1.0, 4.3: the document's issuer is the one configured.
        if doc.get("issuer").and_then(Value::as_str) != Some(self.config.issuer_url.as_str()) {
            return Err(OidcError::Keys(format!(
                "{url} names issuer {:?}, not {:?}",
                doc.get("issuer"),
                self.config.issuer_url
            )));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Keys(format!("{url} has no jwks_uri")))?;
        get_json(http, jwks_uri).await
    }

    /// The keys, fetched again first when due: every [`KEY_REFRESH_INTERVAL`], or when the
    /// token names a key not known and none was tried in [`UNKNOWN_KEY_REFRESH_MIN`].
    async fn keys_for(&self, kid: Option<&str>) -> Arc<KeySet> {
        let current = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let unknown = current.is_empty() || !current.has_key_for(kid);
        // A token naming an unknown key waits for the fetch; a merely stale set is used
        // while another request fetches.
        let mut fetched = if unknown {
            self.fetched.lock().await
        } else {
            match self.fetched.try_lock() {
                Ok(guard) => guard,
                Err(_) => return current,
            }
        };
        let stale = fetched
            .ok_at
            .is_none_or(|t| t.elapsed() >= KEY_REFRESH_INTERVAL);
        let tried_lately = fetched
            .tried_at
            .is_some_and(|t| t.elapsed() < UNKNOWN_KEY_REFRESH_MIN);
        if (stale || unknown) && !tried_lately {
            if let Err(e) = self.fetch(&mut fetched).await {
                tracing::warn!(issuer = %self.config.issuer_url, error = %e, "cannot fetch the OIDC issuer's keys; keeping those last fetched");
            }
        }
        drop(fetched);
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        keys
    }

    /// The user an ID token of this issuer names.
    pub async fn verify(&self, token: &str, header: &Header) -> Result<UserInfo, JwtError> {
        let keys = self.keys_for(header.kid.as_deref()).await;
        if keys.is_empty() {
            return Err(JwtError::Invalid(format!(
                "the keys of the issuer {} could not be fetched",
                self.config.issuer_url
            )));
        }
        let claims = jwt::verify(token, header, &keys, &self.config.signing_algs)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer_url.as_str()) {
            return Err(JwtError::Invalid(
                "the token's issuer is not this one".into(),
            ));
        }
        jwt::check_audience(&claims, std::slice::from_ref(&self.config.client_id))?;
        user_of(&self.config, &claims)
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, OidcError> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| OidcError::Http(format!("{url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(OidcError::Http(format!("{url}: {status}")));
    }
    resp.json()
        .await
        .map_err(|e| OidcError::Http(format!("{url}: not JSON ({e})")))
}

/// The user of verified `claims` (kube-apiserver's rules): the username claim with its
/// prefix (an `email` claim only when `email_verified` is not false), the groups claim (a
/// string or a list) each with the groups prefix, and `system:authenticated`.
pub fn user_of(config: &OidcConfig, claims: &Claims) -> Result<UserInfo, JwtError> {
    let claim = &config.username_claim;
    let name = jwt::string_claim(claims, claim)?;
    if claim == "email" {
        match claims.get("email_verified") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => {
                return Err(JwtError::Invalid(
                    "the token's email is not verified".into(),
                ))
            }
            Some(_) => {
                return Err(JwtError::Invalid(
                    "the token's email_verified claim is not a boolean".into(),
                ))
            }
        }
    }
    let mut groups = Vec::new();
    if let Some(gc) = config.groups_claim.as_deref() {
        let prefix = config.groups_prefix.as_deref().unwrap_or("");
        match claims.get(gc) {
            None => {}
            Some(Value::String(g)) => groups.push(format!("{prefix}{g}")),
            Some(Value::Array(list)) => {
                for g in list {
                    let g = g.as_str().ok_or_else(|| {
                        JwtError::Invalid(format!("the {gc:?} claim holds a non-string"))
                    })?;
                    groups.push(format!("{prefix}{g}"));
                }
            }
            Some(_) => {
                return Err(JwtError::Invalid(format!(
                    "the {gc:?} claim is neither a string nor a list"
                )))
            }
        }
    }
    groups.push(ALL_AUTHENTICATED.to_string());
    Ok(UserInfo {
        name: format!("{}{name}", config.effective_username_prefix()),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{now, TestKey};
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://idp.example";

    fn claims(v: Value) -> Claims {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_username_prefix_follows_kube_apiservers_rule() {
        let mut c = OidcConfig::new(ISSUER, "cw");
        let sub = claims(json!({"sub": "1234", "email": "a@x"}));
        assert_eq!(user_of(&c, &sub).unwrap().name, "https://idp.example#1234");
        c.username_claim = "email".into();
        assert_eq!(user_of(&c, &sub).unwrap().name, "a@x", "email: no prefix");
        c.username_prefix = Some("oidc:".into());
        assert_eq!(user_of(&c, &sub).unwrap().name, "oidc:a@x");
        c.username_claim = "sub".into();
        c.username_prefix = Some(NO_PREFIX.into());
        assert_eq!(user_of(&c, &sub).unwrap().name, "1234");
        c.username_claim = "preferred_username".into();
        assert_eq!(
            user_of(&c, &sub),
            Err(JwtError::MissingClaim("preferred_username".into()))
        );
    }

    #[test]
    fn an_unverified_email_is_no_username() {
        let mut c = OidcConfig::new(ISSUER, "cw");
        c.username_claim = "email".into();
        let unverified = claims(json!({"email": "a@x", "email_verified": false}));
        assert!(user_of(&c, &unverified).is_err());
        let verified = claims(json!({"email": "a@x", "email_verified": true}));
        assert_eq!(user_of(&c, &verified).unwrap().name, "a@x");
        let odd = claims(json!({"email": "a@x", "email_verified": "yes"}));
        assert!(user_of(&c, &odd).is_err());
    }

    #[test]
    fn groups_come_from_their_claim_with_their_prefix() {
        let mut c = OidcConfig::new(ISSUER, "cw");
        let list = claims(json!({"sub": "u", "groups": ["dev", "qa"]}));
        assert_eq!(
            user_of(&c, &list).unwrap().groups,
            vec!["system:authenticated"],
            "no groups claim configured"
        );
        c.groups_claim = Some("groups".into());
        c.groups_prefix = Some("oidc:".into());
        assert_eq!(
            user_of(&c, &list).unwrap().groups,
            vec!["oidc:dev", "oidc:qa", "system:authenticated"]
        );
        let one = claims(json!({"sub": "u", "groups": "ops"}));
        assert_eq!(
            user_of(&c, &one).unwrap().groups,
            vec!["oidc:ops", "system:authenticated"]
        );
        let bad = claims(json!({"sub": "u", "groups": [1]}));
        assert!(user_of(&c, &bad).is_err());
    }

    /// A verifier whose keys are `keys`, read from a file.
    fn verifier(keys: &[&TestKey], algs: Vec<Algorithm>) -> (OidcVerifier, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let jwks = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        std::fs::write(&path, jwks.to_string()).unwrap();
        let mut config = OidcConfig::new(ISSUER, "cw");
        config.jwks_file = Some(path);
        config.signing_algs = algs;
        (OidcVerifier::new(config).unwrap(), dir)
    }

    #[tokio::test]
    async fn an_id_token_is_checked_for_issuer_audience_expiry_and_signature() {
        let rsa = TestKey::rsa("r");
        let ec = TestKey::ec("e");
        let (v, _dir) = verifier(&[&rsa, &ec], vec![Algorithm::RS256, Algorithm::ES256]);
        let good = json!({"iss": ISSUER, "sub": "alice", "aud": ["cw", "x"], "exp": now() + 300});
        let check = |token: String| {
            let v = &v;
            async move {
                let header = jwt::peek(&token).unwrap().header;
                v.verify(&token, &header).await
            }
        };
        for key in [&rsa, &ec] {
            let user = check(key.sign(&good)).await.unwrap();
            assert_eq!(user.name, format!("{ISSUER}#alice"));
        }
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("other");
        assert!(matches!(
            check(rsa.sign(&wrong_aud)).await,
            Err(JwtError::WrongAudience { .. })
        ));
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 3600);
        assert_eq!(check(ec.sign(&expired)).await, Err(JwtError::Expired));
        let mut elsewhere = good.clone();
        elsewhere["iss"] = json!("https://other.example");
        assert!(check(ec.sign(&elsewhere)).await.is_err());
        // Signed by a key the issuer does not have, under a kid it does.
        let forged = TestKey::ec("e").sign(&good);
        assert_eq!(check(forged).await, Err(JwtError::BadSignature));
    }

    #[test]
    fn the_issuer_must_be_https_and_a_client_id_is_required() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(OidcVerifier::new(OidcConfig::new("http://idp.example", "cw")).is_err());
        assert!(OidcVerifier::new(OidcConfig::new("http://127.0.0.1:9", "cw")).is_ok());
        assert!(matches!(
            OidcVerifier::new(OidcConfig::new(ISSUER, " ")),
            Err(OidcError::NoClientId)
        ));
    }
}
