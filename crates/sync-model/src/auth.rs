//! The bearer token that guards the ingest API and the watcher's resync endpoint: one
//! check for every server of cw, in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured token, kept as its SHA-256 digest: comparing digests in constant time
/// reveals neither the token nor its length through timing. Tokens are trimmed on both
/// sides (a Secret's value often ends in a newline).
#[derive(Clone)]
pub struct BearerToken([u8; 32]);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// `None` for an empty (or whitespace-only) token: no token configured.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| BearerToken(Sha256::digest(token.as_bytes()).into()))
    }

    /// True when `given` (a token as sent) is this token.
    pub fn matches(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        bool::from(self.0.ct_eq(&digest))
    }

    /// The digest a sent token is compared by (trimmed like a configured one): computed
    /// once when one token is compared with many ([`BearerToken::matches_digest`]).
    pub fn digest_of(given: &str) -> [u8; 32] {
        Sha256::digest(given.trim().as_bytes()).into()
    }

    /// True when `digest` ([`BearerToken::digest_of`]) is this token's, in constant time.
    pub fn matches_digest(&self, digest: &[u8; 32]) -> bool {
        bool::from(self.0.ct_eq(digest))
    }

    /// The token of an `Authorization: Bearer <token>` header value ("" when none).
    pub fn bearer_of(authorization: Option<&str>) -> &str {
        authorization
            .and_then(|v| v.trim_start().strip_prefix("Bearer "))
            .unwrap_or("")
    }

    /// True when an `Authorization` header's value is `Bearer <this token>`.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        let given = authorization
            .and_then(|v| v.trim_start().strip_prefix("Bearer "))
            .unwrap_or("");
        self.matches(given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly() {
        let t = BearerToken::new("s3cret").unwrap();
        assert!(t.matches("s3cret"));
        assert!(t.matches(" s3cret\n"), "trimmed like the configured one");
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        assert!(t.authorizes(Some("Bearer s3cret")));
        assert!(!t.authorizes(Some("Basic s3cret")));
        assert!(!t.authorizes(None));
    }

    #[test]
    fn an_empty_or_blank_token_is_no_token() {
        assert!(BearerToken::new("").is_none());
        assert!(BearerToken::new(" \n").is_none());
        assert!(BearerToken::new(" t \n").unwrap().matches("t"));
    }
}
