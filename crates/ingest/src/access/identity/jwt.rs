//! JWTs signed by the keys of a JSON Web Key Set, the one check under both OIDC ID tokens
//! and ServiceAccount tokens: the header's algorithm among those allowed, a key of the set
//! (by `kid`) that verifies the signature, `exp` (required) and `nbf` within a minute of
//! leeway, and the audience. Issuers and claims beyond these are the callers' rules.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp` and `nbf` (kube-apiserver's OIDC authenticator allows
/// none on `exp` beyond go-oidc's, and a minute is the most the brief of issue 26 allows).
pub const LEEWAY_SECS: u64 = 60;

/// The claims of a token, as JSON.
pub type Claims = Map<String, Value>;

/// Why a JWT is refused. Never carries token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT ({0})")]
    Malformed(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's signature is not made by any key of its issuer")]
    BadSignature,
    #[error("the token is signed with {0}, which this server does not accept")]
    AlgorithmNotAllowed(String),
    #[error("the token's audience (aud) names none of {}", .expected.join(", "))]
    WrongAudience { expected: Vec<String> },
    #[error("the token lacks a valid {0:?} claim")]
    MissingClaim(String),
    #[error("{0}")]
    Invalid(String),
}

/// A token's header and its unverified issuer: enough to choose who checks it, nothing to
/// trust.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub header: Header,
    pub issuer: Option<String>,
}

/// Looks like a JWT (three base64url parts)? Opaque tokens are checked apart.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty())
}

/// The header and the `iss` claim, unverified.
pub fn peek(token: &str) -> Result<Unverified, JwtError> {
    use base64::Engine;
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| JwtError::Malformed("no payload".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| JwtError::Malformed(format!("payload: {e}")))?;
    let claims: Claims =
        serde_json::from_slice(&bytes).map_err(|e| JwtError::Malformed(format!("payload: {e}")))?;
    Ok(Unverified {
        header,
        issuer: claims
            .get("iss")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// One usable key of a set.
struct Key {
    kid: Option<String>,
    /// The key's own `alg`, when it names one.
    alg: Option<Algorithm>,
    rsa: bool,
    key: DecodingKey,
}

/// The RSA and EC keys of a JSON Web Key Set (`{"keys": [...]}`); keys of other types, or
/// that do not parse, are left out (and logged).
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        write!(f, "KeySet({} keys: {kids:?})", self.keys.len())
    }
}

impl KeySet {
    pub fn from_jwks(jwks: &Value) -> KeySet {
        let mut keys = Vec::new();
        let listed = jwks.get("keys").and_then(Value::as_array);
        for raw in listed.into_iter().flatten() {
            let jwk: Jwk = match serde_json::from_value(raw.clone()) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(error = %e, "a JSON Web Key left out");
                    continue;
                }
            };
            let rsa = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => true,
                AlgorithmParameters::EllipticCurve(_) => false,
                _ => continue,
            };
            // Keys meant for encryption only are not signing keys.
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                tracing::debug!(kid = ?jwk.common.key_id, "a JSON Web Key that does not parse left out");
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                rsa,
                key,
            });
        }
        KeySet { keys }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a token naming `kid` (or none) has a key of this set to be checked with.
    pub fn has_key_for(&self, kid: Option<&str>) -> bool {
        kid.is_none_or(|kid| self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)))
    }

    /// The keys a token with this header may be signed with: its `kid`'s (every key when
    /// it names none), of its algorithm's family.
    fn candidates<'a>(&'a self, header: &'a Header) -> impl Iterator<Item = &'a Key> + 'a {
        let rsa = is_rsa(header.alg);
        self.keys.iter().filter(move |k| {
            header
                .kid
                .as_deref()
                .is_none_or(|kid| k.kid.as_deref() == Some(kid))
                && k.rsa == rsa
                && k.alg.is_none_or(|a| a == header.alg)
        })
    }
}

fn is_rsa(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    )
}

/// The algorithms a key set may sign with (no HMAC: a shared secret is not an issuer's
/// key), by their JOSE names.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name
        .trim()
        .parse()
        .map_err(|_| format!("unknown signing algorithm {name:?}"))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 | Algorithm::EdDSA => Err(format!(
            "{name}: only RSA and ECDSA algorithms are accepted (RS256, RS384, RS512, PS256, \
             PS384, PS512, ES256, ES384)"
        )),
        alg => Ok(alg),
    }
}

/// The claims of `token`, signed by a key of `keys` with an algorithm of `allowed`, not
/// expired and not before its `nbf` (within [`LEEWAY_SECS`]).
pub fn verify(
    token: &str,
    header: &Header,
    keys: &KeySet,
    allowed: &[Algorithm],
) -> Result<Claims, JwtError> {
    if !allowed.contains(&header.alg) {
        return Err(JwtError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let mut last = JwtError::BadSignature;
    for key in keys.candidates(header) {
        match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    // Another key of the same kid (or of a set without kids) may verify it.
                    K::InvalidSignature | K::InvalidAlgorithm | K::InvalidEcdsaKey => continue,
                    // The signature verified: the claims are what is wrong.
                    K::ExpiredSignature => return Err(JwtError::Expired),
                    K::ImmatureSignature => return Err(JwtError::NotYetValid),
                    K::MissingRequiredClaim(c) => return Err(JwtError::MissingClaim(c.clone())),
                    other => last = JwtError::Invalid(format!("{other:?}")),
                }
            }
        }
    }
    Err(last)
}

/// `aud` (a string or a list) names one of `accepted`.
pub fn check_audience(claims: &Claims, accepted: &[String]) -> Result<(), JwtError> {
    let wrong = || JwtError::WrongAudience {
        expected: accepted.to_vec(),
    };
    let names = |a: &str| accepted.iter().any(|x| x == a);
    match claims.get("aud") {
        Some(Value::String(a)) if names(a) => Ok(()),
        Some(Value::Array(list)) if list.iter().filter_map(Value::as_str).any(names) => Ok(()),
        _ => Err(wrong()),
    }
}

/// A string claim.
pub fn string_claim<'a>(claims: &'a Claims, name: &str) -> Result<&'a str, JwtError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| JwtError::MissingClaim(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::test_keys::{self, TestKey};
    use super::*;

    fn claims() -> Value {
        serde_json::json!({"iss": "https://idp", "sub": "alice", "aud": "cw", "exp": test_keys::now() + 300})
    }

    #[test]
    fn a_token_verifies_with_its_key_and_not_with_another() {
        let allowed = [Algorithm::RS256, Algorithm::ES256];
        for key in [TestKey::rsa("r1"), TestKey::ec("e1")] {
            let token = key.sign(&claims());
            let u = peek(&token).unwrap();
            assert_eq!(u.issuer.as_deref(), Some("https://idp"));
            let got = verify(&token, &u.header, &KeySet::from_jwks(&key.jwks()), &allowed);
            assert_eq!(got.unwrap()["sub"], "alice");
        }
        // Another key under the same kid: a bad signature.
        let token = TestKey::ec("e1").sign(&claims());
        let header = peek(&token).unwrap().header;
        let others = KeySet::from_jwks(&TestKey::ec("e1").jwks());
        assert_eq!(
            verify(&token, &header, &others, &allowed),
            Err(JwtError::BadSignature)
        );
        // No key of its kid at all: a bad signature too (nothing of the issuer signed it).
        let elsewhere = KeySet::from_jwks(&TestKey::ec("e2").jwks());
        assert!(!elsewhere.has_key_for(Some("e1")));
        assert_eq!(
            verify(&token, &header, &elsewhere, &allowed),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn expiry_and_not_before_are_checked_within_a_minute() {
        let key = TestKey::ec("k");
        let keys = KeySet::from_jwks(&key.jwks());
        let check = |c: Value| {
            let t = key.sign(&c);
            verify(&t, &peek(&t).unwrap().header, &keys, &[Algorithm::ES256])
        };
        let now = test_keys::now();
        assert_eq!(
            check(serde_json::json!({"exp": now - 120})),
            Err(JwtError::Expired)
        );
        assert!(
            check(serde_json::json!({"exp": now - 30})).is_ok(),
            "leeway"
        );
        assert_eq!(
            check(serde_json::json!({"exp": now + 600, "nbf": now + 300})),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            check(serde_json::json!({"sub": "no exp"})),
            Err(JwtError::MissingClaim("exp".into()))
        );
    }

    #[test]
    fn only_the_allowed_algorithms_are_accepted() {
        let key = TestKey::rsa("k");
        let token = key.sign(&claims());
        let keys = KeySet::from_jwks(&key.jwks());
        let header = peek(&token).unwrap().header;
        assert!(matches!(
            verify(&token, &header, &keys, &[Algorithm::ES256]),
            Err(JwtError::AlgorithmNotAllowed(_))
        ));
        assert!(parse_algorithm("HS256").is_err());
        assert_eq!(parse_algorithm("ES256"), Ok(Algorithm::ES256));
    }

    #[test]
    fn the_audience_may_be_one_or_a_list() {
        let accepted = vec!["cw".to_string()];
        let with = |aud: Value| {
            let mut c = Claims::new();
            c.insert("aud".into(), aud);
            check_audience(&c, &accepted)
        };
        assert!(with(serde_json::json!("cw")).is_ok());
        assert!(with(serde_json::json!(["other", "cw"])).is_ok());
        assert!(matches!(
            with(serde_json::json!(["other"])),
            Err(JwtError::WrongAudience { .. })
        ));
        assert!(check_audience(&Claims::new(), &accepted).is_err());
    }
}
