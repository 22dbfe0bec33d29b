//! Page cursors of `search_resources`: the offset of the next page, bound to the request
//! that made it, so that a cursor passed with other filters is refused instead of paging
//! through a different result list.

use std::hash::{DefaultHasher, Hash, Hasher};

/// An opaque `p<offset>-<fingerprint>` token.
pub fn encode(offset: usize, fingerprint: u64) -> String {
    format!("p{offset}-{fingerprint:016x}")
}

/// The offset in `cursor`, if it was made for the request with `fingerprint`.
pub fn decode(cursor: &str, fingerprint: u64) -> Result<usize, String> {
    let bad = || {
        "this cursor is not one that search_resources returned: pass nextCursor unchanged, \
         or leave cursor out to start from the first page"
            .to_string()
    };
    let (offset, print) = cursor
        .strip_prefix('p')
        .and_then(|rest| rest.split_once('-'))
        .ok_or_else(bad)?;
    let offset: usize = offset.parse().map_err(|_| bad())?;
    if print != format!("{fingerprint:016x}") {
        return Err(
            "this cursor belongs to a search with other parameters: repeat the \
                    search with the same query, filters and mode, or leave cursor out"
                .into(),
        );
    }
    Ok(offset)
}

/// A fingerprint of everything that decides a result list (not the page size).
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_only_with_its_own_request() {
        let f = fingerprint(&["postgres", "StatefulSet"]);
        let c = encode(40, f);
        assert_eq!(decode(&c, f), Ok(40));
        let other = fingerprint(&["redis", "StatefulSet"]);
        assert!(decode(&c, other).unwrap_err().contains("other parameters"));
        assert!(decode("garbage", f).is_err());
    }
}
