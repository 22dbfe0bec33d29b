//! Signing keys and tokens made in tests: a test identity provider's and a test cluster's
//! (ES256 keys generated each time with ring, one fixed RS256 key). Also used by the HTTP
//! tests (`tests/identity_api.rs` includes this file).

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A 2048-bit RSA key made for these tests only (PKCS#1 DER), with its public modulus and
/// exponent.
const RSA_PKCS1_DER_B64: &str = concat!(
    "MIIEpAIBAAKCAQEAsTv5sEpAKm3mJhYb/mxBUSJ24RsJ/gO0cAXUJ7itA63QLlxP0YBqK6vSYZMdBs5h7NWw10kdf8",
    "QkVhleHzAaoZhDlN2whyZGakhdpbaxnLqo5ZxuVTTDLy/nOJduOdpgYkdBz2k1163bNR3tldkvxccD72X8QW8J+DB6",
    "mYPI8XXmxQigBR6aiC4kQVuhRxV3Gm0+3B0YC3yoxBweQMQLlfGm7y0KDqPoZAbn1kYBIRDkrk4CelIK9xQ+0vKeHj",
    "NjUF53WeaEE9Zc7t0RGiXrzQd3k/64WOIg7h3iJlUu6AvjM+9ONN+I/VQ9vmfxkwE+yDQR/wgZCCYv7EG21hzGIwID",
    "AQABAoIBABA3rDZ7ki6FEDZeTIvLLRjhqJ4a2B8PCLo9a6HXg2Fe92SJRuElOScrhEcwa8tdJCxvNfd6dcFkrxcqdW",
    "iGLCcAOfg2ZuT0VXomirHTVfeWREZ/uhWANqIBO0z8Mkux602Ni/yQzyqf+nsm9MAC98ecWS7/69qy8JHDdzHH6Mxg",
    "oIf+80NPBvJbOojZxbtOMHa5eIMk8qUrMCgEG2D4wgJ/n5Jd+JMsKg699w+go9+LwbFHIGPECtEGsnQUSc5PoDZY7H",
    "jJlFQg6mqDy9+AvOjzNPKEMKzxWLtqYroXRQdNhe4VjCMjR+qN8AjjgYy/e1cWVyJgfCvHZpmQSndqXRUCgYEA5070",
    "4uEJ3KZSeIKGUd8iZ7K3WahmxIc3oDO8iatlpASZjsF36zIDjBOXYJY4mQ3Ow+4a9V6K5mGrqu3lICyKNPam2DFXkJ",
    "yKV3hVMzQFHqIovORTqWVItJssTiSRSYWCfbRVwilmQox7NUJgb+SFslwZO7chYweeTAlw2nOiEaUCgYEAxCdQ+stf",
    "7YdDndqVFK03TwepoidZKK/0dw5lFa3qlRsujgs4TMDyTMA5NSXW+H3wsCgTu0VTExelQuMmWzDUXgdACvJekKOFB+",
    "Y1+OwzEashwXM1Ek3ZtnTynF/+oZsInVTRrlZyUlY3SX5KRJqUuzwzKRE5uaQHAnIkc8Bz3icCgYAjt8WI40cqk2RY",
    "x48GRXaCnM5DQgXcgyTL0DFk8NqZITy1Fpr17pstnjjZ6ViECeXLy5DOIvM/8AUaN/IRrc8JrqzE5Zmn8wRJzYMajQ",
    "XdXRz9TiS9G67GdM+6oVruB3fHAXncqZfo3tiHuOA7ZwZeLGqZFgZJzHtdMngCw6hbIQKBgQCAveVSlgUiGzNv+bT7",
    "Wyz/++GEghrsr3/eXF5QOlPLBYoqxIZxKfpeEZP6pBlSAybkF4nL0hZSY6SeIAReuc/I3y1Tgfw7Jnf71Ub7V9u07w",
    "M6uujMWLhaHqvVotO3MdAXo0H0ENz72YZ0ACWynVqdAUf63klq5JONMWlnZ5sk5QKBgQCHngAqmQm/NiIH6fPrQ4sy",
    "Nu4wsWusg8aegIy6yJdZbS1vKkCwrVHLFYOgxhfuEVfJn18PBROnJx/jXYckmL6Jf8+Osil6CtIYnXwycPRwF4SvnN",
    "kkuV2+UrZ4X8wTs9igdQO48gPvChCfXIeV9VFalyS6PsOCLWMIGKXtfjLXdQ==",
);
const RSA_N: &str = "sTv5sEpAKm3mJhYb_mxBUSJ24RsJ_gO0cAXUJ7itA63QLlxP0YBqK6vSYZMdBs5h7NWw10kdf8QkVhleHzAaoZhDlN2whyZGakhdpbaxnLqo5ZxuVTTDLy_nOJduOdpgYkdBz2k1163bNR3tldkvxccD72X8QW8J-DB6mYPI8XXmxQigBR6aiC4kQVuhRxV3Gm0-3B0YC3yoxBweQMQLlfGm7y0KDqPoZAbn1kYBIRDkrk4CelIK9xQ-0vKeHjNjUF53WeaEE9Zc7t0RGiXrzQd3k_64WOIg7h3iJlUu6AvjM-9ONN-I_VQ9vmfxkwE-yDQR_wgZCCYv7EG21hzGIw";
const RSA_E: &str = "AQAB";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key with its kid, and its public half as a JSON Web Key.
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    /// A fresh P-256 key (ES256).
    pub fn ec(kid: &str) -> TestKey {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key just made");
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
            }),
        }
    }

    /// The fixed RSA key (RS256).
    pub fn rsa(kid: &str) -> TestKey {
        let der = base64::engine::general_purpose::STANDARD
            .decode(RSA_PKCS1_DER_B64)
            .expect("the fixed key is base64");
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der),
            jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": RSA_N, "e": RSA_E}),
        }
    }

    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// A key set of this key alone.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk()]})
    }

    /// `claims` signed with this key, its kid in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing a test token")
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
