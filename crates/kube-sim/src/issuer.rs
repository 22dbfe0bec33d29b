//! The simulator's ServiceAccount token issuer: an ES256 (P-256) key made at start, the
//! tokens of the TokenRequest API signed with it, their verification when they come back as
//! bearer tokens, and the OIDC discovery documents (`/.well-known/openid-configuration`,
//! `/openid/v1/jwks`) a relying party checks them with.
//! Claims follow kube-apiserver's (k8s.io/kubernetes `pkg/serviceaccount/claims.go`);
//! see <https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#service-account-issuer-discovery>.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::SimError;

/// kind's (and kubeadm's) `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1, then the
/// 65-byte uncompressed point as a BIT STRING): kube-apiserver's key id is the SHA-256 of
/// this PKIX encoding.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `kubernetes.io.serviceaccount` of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountRef {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    pub namespace: String,
    pub serviceaccount: ServiceAccountRef,
}

/// The claims of a ServiceAccount token as kube-apiserver writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// Why a bearer token is not one of this issuer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bearer token: {0}")]
pub struct InvalidToken(pub String);

/// One simulator's signing key and issuer.
pub struct TokenIssuer {
    issuer: String,
    api_audiences: Vec<String>,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl TokenIssuer {
    /// A fresh P-256 key for `issuer`; tokens authenticate at this API server when their
    /// audience includes one of `api_audiences` (kube-apiserver's `--api-audiences`, which
    /// defaults to the issuer when empty).
    pub fn generate(issuer: &str, api_audiences: &[String]) -> Result<Self, SimError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| SimError::Io("generating the ServiceAccount signing key".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| SimError::Io("reading the generated ServiceAccount key".into()))?;
        let point = pair.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(point);
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        let jwk = json!({
            "use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        });
        let api_audiences = if api_audiences.is_empty() {
            vec![issuer.to_string()]
        } else {
            api_audiences.to_vec()
        };
        Ok(TokenIssuer {
            issuer: issuer.to_string(),
            api_audiences,
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding: DecodingKey::from_ec_der(point),
            jwk,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// `GET /.well-known/openid-configuration`, as kube-apiserver serves it.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// `GET /openid/v1/jwks`: the public key tokens are checked with.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// A token for ServiceAccount `namespace/name` (with its uid), for `audiences` (the API
    /// audiences when empty), valid `ttl_secs` from `now` (Unix seconds).
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[String],
        now: u64,
        ttl_secs: u64,
    ) -> Result<(String, ServiceAccountClaims), SimError> {
        let claims = ServiceAccountClaims {
            iss: self.issuer.clone(),
            sub: format!(
                "{}{namespace}:{name}",
                sync_model::rbac::SERVICE_ACCOUNT_PREFIX
            ),
            aud: if audiences.is_empty() {
                self.api_audiences.clone()
            } else {
                audiences.to_vec()
            },
            exp: now + ttl_secs,
            iat: now,
            nbf: now,
            jti: random_uuid(),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_string(),
                serviceaccount: ServiceAccountRef {
                    name: name.to_string(),
                    uid: uid.to_string(),
                },
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| SimError::Io(format!("signing a ServiceAccount token: {e}")))?;
        Ok((token, claims))
    }

    /// The claims of a token this issuer signed for this API server: signature, issuer,
    /// expiry and not-before, and an audience among the API audiences. No clock skew is
    /// allowed (kube-apiserver allows a minute) so that a test sees expiry within seconds.
    pub fn verify(&self, token: &str) -> Result<ServiceAccountClaims, InvalidToken> {
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = 0;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&self.api_audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<ServiceAccountClaims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| InvalidToken(e.to_string()))
    }
}

/// Whether a bearer token is shaped like a JWT (three base64url parts, a JSON header with an
/// `alg`): such a token is judged as a ServiceAccount token even where the simulator is open.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && jsonwebtoken::decode_header(token).is_ok()
}

/// A random RFC 4122 version 4 UUID (the `jti` of a token).
fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b
        .iter()
        .enumerate()
        .map(|(i, x)| match i {
            6 => format!("{:02x}", (x & 0x0f) | 0x40),
            8 => format!("{:02x}", (x & 0x3f) | 0x80),
            _ => format!("{x:02x}"),
        })
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::generate(DEFAULT_ISSUER, &[]).expect("a key")
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn a_token_verifies_at_its_issuer_with_the_claims_kubernetes_writes() {
        let i = issuer();
        let (token, _) = i
            .issue("ns", "sa", "u-1", &[], now(), 600)
            .expect("a token");
        let c = i.verify(&token).expect("valid");
        assert_eq!(c.sub, "system:serviceaccount:ns:sa");
        assert_eq!(c.aud, vec![DEFAULT_ISSUER.to_string()]);
        assert_eq!(c.kubernetes.serviceaccount.uid, "u-1");
        assert_eq!(c.exp - c.iat, 600);
        let header = jsonwebtoken::decode_header(&token).expect("a header");
        assert_eq!(header.kid.as_deref(), i.jwks()["keys"][0]["kid"].as_str());
    }

    #[test]
    fn the_same_issuer_with_another_key_refuses_the_token() {
        let (token, _) = issuer()
            .issue("ns", "sa", "u", &[], now(), 600)
            .expect("a token");
        assert!(issuer().verify(&token).is_err());
    }

    #[test]
    fn a_token_for_another_audience_is_not_for_the_api() {
        let i = issuer();
        let (token, _) = i
            .issue("ns", "sa", "u", &["cw".to_string()], now(), 600)
            .expect("a token");
        assert!(i.verify(&token).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let i = issuer();
        let (token, _) = i
            .issue("ns", "sa", "u", &[], now() - 700, 600)
            .expect("a token");
        assert!(i.verify(&token).is_err());
    }

    #[test]
    fn the_key_id_is_the_sha256_of_the_pkix_public_key() {
        let i = issuer();
        let jwk = &i.jwks()["keys"][0];
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.push(4);
        for c in ["x", "y"] {
            spki.extend(URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap());
        }
        let want = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        assert_eq!(jwk["kid"], json!(want));
        assert_eq!(spki.len(), 91, "a P-256 SubjectPublicKeyInfo is 91 bytes");
    }

    #[test]
    fn uuids_are_version_4() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
