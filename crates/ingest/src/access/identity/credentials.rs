//! The opaque tokens the API knows: the shared bearer token (`CW_INGEST_TOKEN`: everything)
//! and the tokens file (`CW_INGEST_TOKENS_FILE`: per token, the clusters it may write,
//! read-only, or a user). A watcher holding its cluster's token can write and delete only that
//! cluster's documents. Tokens are compared by SHA-256 digest in constant time, every
//! configured token each time, and the file is read again when its modification time
//! changes, so tokens are added and revoked without a restart.
//!
//! The file holds one token per line, then what it may do:
//!
//! ```text
//! # token                 may
//! 8f3c...d1               prod-eu
//! 77aa...90               staging,dev
//! 01bd...ee               *
//! c4f2...5a               read-only
//! 9e07...41               user=alice groups=dev,qa
//! 5d1c...08               user=ci-bot
//! ```
//!
//! Operators' and watchers' tokens: `*` is every cluster; a comma-separated list writes those
//! clusters; `read-only` may search and read but not write. All three read everything.
//!
//! Users' tokens: `user=NAME` (and optionally `groups=G1,G2`) make the token's holder that
//! user, as a Kubernetes authenticator names one: each cluster's RBAC decides what they see
//! (in every cluster of the fleet), and they never write. `system:authenticated` is added
//! to their groups, as Kubernetes adds it. Blank lines and lines starting with `#` are
//! ignored; a malformed line is an error that names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sync_model::rbac::{UserInfo, ALL_AUTHENTICATED};
use sync_model::{BearerToken, ClusterId};

/// What a request's token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Read and write every cluster (the shared token, `*`, or no auth configured).
    All,
    /// Read everything; write only these clusters.
    Clusters(BTreeSet<ClusterId>),
    /// Read everything; write nothing.
    ReadOnly,
}

impl Access {
    pub fn may_write(&self, cluster: &ClusterId) -> bool {
        match self {
            Access::All => true,
            Access::Clusters(set) => set.contains(cluster),
            Access::ReadOnly => false,
        }
    }

    /// What it may write, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Access::All => "every cluster".into(),
            Access::ReadOnly => "nothing (read-only)".into(),
            Access::Clusters(set) => {
                let ids: Vec<&str> = set.iter().map(ClusterId::as_str).collect();
                ids.join(", ")
            }
        }
    }
}

/// Whom an opaque token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHolder {
    /// An operator or a watcher: reads everything, writes what [`Access`] says.
    Operator(Access),
    /// A user of the tokens file (`user=NAME groups=...`): reads what RBAC allows in every
    /// cluster, writes nothing.
    User(UserInfo),
}

/// Why a tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tokens file {path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The tokens of a file as last read, and the modification time they were read at.
struct Loaded {
    modified: Option<SystemTime>,
    entries: Vec<(BearerToken, TokenHolder)>,
}

/// The tokens file, read again whenever its modification time changes. A file that has
/// become unreadable or malformed keeps the tokens last read (and says so in the log):
/// an editing mistake must not lock every watcher out, nor let anyone in.
pub struct TokensFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl TokensFile {
    /// Reads `path`; a start-up with a malformed file fails, naming the line.
    pub fn open(path: &Path) -> Result<Self, TokensFileError> {
        let modified = modified(path);
        let entries = read_entries(path)?;
        Ok(TokensFile {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded { modified, entries }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whom the token with `digest` stands for; `None` when it is not in the file.
    pub fn holder(&self, digest: &[u8; 32]) -> Option<TokenHolder> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = modified(&self.path);
        if now != loaded.modified {
            match read_entries(&self.path) {
                Ok(entries) => {
                    tracing::info!(path = %self.path.display(), tokens = entries.len(), "tokens file reloaded");
                    loaded.entries = entries;
                }
                Err(e) => {
                    tracing::error!(error = %e, "tokens file not reloaded; keeping the tokens last read")
                }
            }
            loaded.modified = now;
        }
        // Every entry is compared, whichever matches: the time taken says nothing of which.
        let mut found = None;
        for (token, holder) in &loaded.entries {
            if token.matches_digest(digest) && found.is_none() {
                found = Some(holder.clone());
            }
        }
        found
    }

    /// What an operator's token with `digest` may do; `None` when it is not in the file or
    /// names a user.
    pub fn access(&self, digest: &[u8; 32]) -> Option<Access> {
        match self.holder(digest)? {
            TokenHolder::Operator(access) => Some(access),
            TokenHolder::User(_) => None,
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_entries(path: &Path) -> Result<Vec<(BearerToken, TokenHolder)>, TokensFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokensFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_tokens(&text).map_err(|(line, message)| TokensFileError::Line {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// The entries of a tokens file's text; the first bad line (1-based) and why.
pub fn parse_tokens(text: &str) -> Result<Vec<(BearerToken, TokenHolder)>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |m: String| (i + 1, m);
        let mut words = line.split_whitespace();
        let (Some(token), Some(scope)) = (words.next(), words.next()) else {
            return Err(bad(
                "expected `<token> <clusters>` (clusters: comma-separated ids, `*` or `read-only`) \
                 or `<token> user=<name> [groups=<g1>,<g2>]`"
                    .into(),
            ));
        };
        let rest: Vec<&str> = words.collect();
        let token = BearerToken::new(token).ok_or_else(|| bad("empty token".into()))?;
        let holder = if scope.starts_with("user=") {
            TokenHolder::User(parse_user(scope, &rest).map_err(bad)?)
        } else {
            if !rest.is_empty() {
                return Err(bad(format!(
                    "unexpected {:?} after the clusters: expected `<token> <clusters>`",
                    rest.join(" ")
                )));
            }
            TokenHolder::Operator(match scope {
                "*" => Access::All,
                "read-only" => Access::ReadOnly,
                list => Access::Clusters(
                    list.split(',')
                        .filter(|c| !c.is_empty())
                        .map(|c| ClusterId::new(c).map_err(|e| bad(e.to_string())))
                        .collect::<Result<BTreeSet<_>, _>>()?,
                ),
            })
        };
        out.push((token, holder));
    }
    Ok(out)
}

/// `user=NAME` and the optional `groups=G1,G2` after it, as a user with
/// `system:authenticated` among its groups.
fn parse_user(user: &str, rest: &[&str]) -> Result<UserInfo, String> {
    let name = user.trim_start_matches("user=");
    if name.is_empty() {
        return Err("`user=` names no user".into());
    }
    let mut groups: Vec<String> = Vec::new();
    match rest {
        [] => {}
        [g] if g.starts_with("groups=") => {
            for group in g.trim_start_matches("groups=").split(',') {
                if group.is_empty() {
                    return Err(format!("an empty group in {g:?}"));
                }
                groups.push(group.to_string());
            }
        }
        other => {
            return Err(format!(
                "unexpected {:?} after user={name}: expected `groups=<g1>,<g2>` or nothing",
                other.join(" ")
            ))
        }
    }
    if !groups.iter().any(|g| g == ALL_AUTHENTICATED) {
        groups.push(ALL_AUTHENTICATED.to_string());
    }
    Ok(UserInfo {
        name: name.to_string(),
        groups,
    })
}

impl std::fmt::Debug for TokensFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokensFile({})", self.path.display())
    }
}

/// The opaque tokens the API checks a request's token against (JWTs are checked apart:
/// [`super::Authenticator`]).
#[derive(Default)]
pub struct Credentials {
    pub shared: Option<BearerToken>,
    pub file: Option<std::sync::Arc<TokensFile>>,
}

impl Credentials {
    /// True when requests must carry a token.
    pub fn required(&self) -> bool {
        self.shared.is_some() || self.file.is_some()
    }

    /// Whom a request's bearer token (as sent) stands for among the opaque tokens; `None`
    /// when it is none of them. Every configured token is compared, whichever matches.
    pub fn holder(&self, token: &str) -> Option<TokenHolder> {
        let digest = BearerToken::digest_of(token);
        let shared = self
            .shared
            .as_ref()
            .is_some_and(|t| t.matches_digest(&digest));
        let from_file = self.file.as_ref().and_then(|f| f.holder(&digest));
        if shared {
            return Some(TokenHolder::Operator(Access::All));
        }
        from_file
    }

    /// What an operator's request with this `Authorization` header may do; `None` when it
    /// may do nothing (401) or is a user's.
    pub fn access(&self, authorization: Option<&str>) -> Option<Access> {
        if !self.required() {
            return Some(Access::All);
        }
        match self.holder(BearerToken::bearer_of(authorization))? {
            TokenHolder::Operator(access) => Some(access),
            TokenHolder::User(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str) -> ClusterId {
        ClusterId::new(id).unwrap()
    }

    #[test]
    fn a_tokens_file_names_clusters_everything_or_read_only() {
        let entries = parse_tokens(
            "# comment\n\ntok-a  alpha\ntok-ab alpha,beta\ntok-all *\ntok-ro read-only\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 4);
        let access = |t: &str| {
            let d = BearerToken::digest_of(t);
            entries
                .iter()
                .find(|(tok, _)| tok.matches_digest(&d))
                .map(|(_, holder)| match holder {
                    TokenHolder::Operator(a) => a.clone(),
                    TokenHolder::User(u) => panic!("{u:?}"),
                })
        };
        assert!(access("tok-a").unwrap().may_write(&cluster("alpha")));
        assert!(!access("tok-a").unwrap().may_write(&cluster("beta")));
        assert!(access("tok-ab").unwrap().may_write(&cluster("beta")));
        assert!(access("tok-all").unwrap().may_write(&cluster("any")));
        assert!(!access("tok-ro").unwrap().may_write(&cluster("alpha")));
        assert_eq!(access("nope"), None);
    }

    #[test]
    fn a_malformed_line_is_named() {
        assert_eq!(parse_tokens("ok alpha\nlonely\n").unwrap_err().0, 2);
        let (line, message) = parse_tokens("t Prod_EU\n").unwrap_err();
        assert_eq!(line, 1);
        assert!(message.contains("DNS label"), "{message}");
        assert!(parse_tokens("t a b\n").is_err());
    }

    #[test]
    fn the_shared_token_may_do_everything_and_no_auth_lets_everyone() {
        assert_eq!(Credentials::default().access(None), Some(Access::All));
        let creds = Credentials {
            shared: BearerToken::new("s3cret"),
            file: None,
        };
        assert_eq!(creds.access(Some("Bearer s3cret")), Some(Access::All));
        assert_eq!(creds.access(Some("Bearer other")), None);
        assert_eq!(creds.access(None), None);
    }

    #[test]
    fn the_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "tok-a alpha\n").unwrap();
        let file = TokensFile::open(&path).unwrap();
        let digest = BearerToken::digest_of("tok-a");
        assert!(file.access(&digest).is_some());
        // A new modification time each edit (some filesystems keep whole seconds).
        let rewrite = |text: &str, secs_later: u64| {
            std::fs::write(&path, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(SystemTime::now() + std::time::Duration::from_secs(secs_later))
                .unwrap();
        };
        rewrite("tok-b beta\n", 5);
        assert_eq!(file.access(&digest), None, "tok-a was revoked");
        assert!(file.access(&BearerToken::digest_of("tok-b")).is_some());
        // A malformed edit keeps the tokens last read.
        rewrite("broken\n", 10);
        assert!(file.access(&BearerToken::digest_of("tok-b")).is_some());
    }

    #[test]
    fn a_tokens_file_line_may_name_a_user_and_groups() {
        let entries =
            parse_tokens("tok-alice user=alice groups=dev,qa\ntok-bot user=ci-bot\ntok-ops *\n")
                .unwrap();
        let holder = |t: &str| {
            let d = BearerToken::digest_of(t);
            entries
                .iter()
                .find(|(tok, _)| tok.matches_digest(&d))
                .map(|(_, h)| h.clone())
        };
        assert_eq!(
            holder("tok-alice"),
            Some(TokenHolder::User(UserInfo {
                name: "alice".into(),
                groups: vec!["dev".into(), "qa".into(), "system:authenticated".into()],
            }))
        );
        assert_eq!(
            holder("tok-bot"),
            Some(TokenHolder::User(UserInfo {
                name: "ci-bot".into(),
                groups: vec!["system:authenticated".into()],
            }))
        );
        assert_eq!(holder("tok-ops"), Some(TokenHolder::Operator(Access::All)));
        // Through the file: a user's token is no operator's.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "tok-alice user=alice\n").unwrap();
        let creds = Credentials {
            shared: None,
            file: Some(std::sync::Arc::new(TokensFile::open(&path).unwrap())),
        };
        assert!(
            matches!(creds.holder("tok-alice"), Some(TokenHolder::User(u)) if u.name == "alice")
        );
        assert_eq!(creds.access(Some("Bearer tok-alice")), None);
    }

    #[test]
    fn a_malformed_user_line_is_named() {
        for (text, says) in [
            ("ok *\nt user=\n", "names no user"),
            ("ok *\nt user=bob teams=a\n", "teams=a"),
            ("ok *\nt user=bob groups=a,,b\n", "empty group"),
            ("ok *\nt user=bob groups=a extra\n", "extra"),
            ("ok *\nt alpha groups=a\n", "after the clusters"),
        ] {
            let (line, message) = parse_tokens(text).unwrap_err();
            assert_eq!(line, 2, "{text:?}");
            assert!(message.contains(says), "{text:?}: {message}");
        }
    }
}
