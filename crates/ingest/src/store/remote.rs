//! The plumbing of the stores that are servers (Chroma, Qdrant): one HTTP call and how it
//! failed, and the collections a client has prepared. An unreachable server, 5xx, 429 and
//! 408 are transient (the sync answers 503 and the sender retries); 404, 409 and 413 are
//! told apart for the callers that act on them; any other answer is a refusal naming the
//! store. A collection that vanishes under cw (deleted, or the server restarted on empty
//! data) is forgotten, so that the next sync creates it anew.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::StoreError;
use crate::retry::error_chain;

/// What sets one store server apart in its answers.
pub(crate) struct Dialect {
    /// Named in every error: `Chroma`, `Qdrant`.
    pub name: &'static str,
    /// Reads the server's message out of an error answer's body.
    pub error_message: fn(&[u8]) -> String,
    /// Said after a refusal of the credentials (401, 403): how to set them.
    pub credentials_hint: Option<&'static str>,
}

/// How one call went wrong, before it becomes a [`StoreError`].
#[derive(Debug)]
pub(crate) enum CallError {
    Store(StoreError),
    /// 404: what is missing (a collection, a tenant), in the server's words.
    NotFound {
        store: &'static str,
        message: String,
    },
    /// 409: made meanwhile by someone else.
    Conflict {
        store: &'static str,
        message: String,
    },
    /// 413: the request is over the server's size limit.
    TooLarge {
        store: &'static str,
    },
}

impl CallError {
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, CallError::Store(e) if e.is_transient())
    }

    pub(crate) fn is_too_large(&self) -> bool {
        matches!(self, CallError::TooLarge { .. })
    }

    /// A failed readiness probe: whatever the server answered, it is not ready (rather
    /// than refusing what cw asked).
    pub(crate) fn not_ready(self) -> StoreError {
        match StoreError::from(self) {
            StoreError::Rejected(m) => StoreError::Unavailable(m),
            other => other,
        }
    }
}

impl From<CallError> for StoreError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Store(e) => e,
            CallError::NotFound { store, message } => {
                StoreError::Rejected(format!("{store}: not found: {message}"))
            }
            CallError::Conflict { store, message } => {
                StoreError::Rejected(format!("{store}: conflict (409): {message}"))
            }
            CallError::TooLarge { store } => {
                StoreError::Rejected(format!("{store}: request too large (413)"))
            }
        }
    }
}

/// The HTTP client of one store server.
pub(crate) struct Http {
    pub client: reqwest::Client,
    dialect: &'static Dialect,
    /// The server's URL as configured, named when it cannot be reached.
    url: String,
}

impl Http {
    /// Needs a rustls crypto provider installed in the process (for https URLs).
    pub(crate) fn new(
        dialect: &'static Dialect,
        url: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = crate::retry::http_client(timeout).map_err(StoreError::Rejected)?;
        Ok(Http {
            client,
            dialect,
            url: url.to_string(),
        })
    }

    /// Sends `req` once; the body of a 2xx answer.
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> Result<Bytes, CallError> {
        let store = self.dialect.name;
        let resp = req.send().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "cannot reach {store} at {}: {}",
                self.url,
                error_chain(&e)
            )))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            CallError::Store(StoreError::Unavailable(format!(
                "reading {store}'s answer: {e}"
            )))
        })?;
        if status.is_success() {
            return Ok(body);
        }
        Err(failure(
            self.dialect,
            status,
            (self.dialect.error_message)(&body),
        ))
    }

    /// `body` read as `T`.
    pub(crate) fn parse<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, CallError> {
        serde_json::from_slice(body).map_err(|e| {
            CallError::Store(StoreError::Rejected(format!(
                "{} answered something unexpected: {e}",
                self.dialect.name
            )))
        })
    }
}

/// What an answer of `status` with the server's `message` means for the caller.
fn failure(dialect: &Dialect, status: StatusCode, message: String) -> CallError {
    let store = dialect.name;
    match (status.as_u16(), dialect.credentials_hint) {
        (404, _) => CallError::NotFound { store, message },
        (409, _) => CallError::Conflict { store, message },
        (413, _) => CallError::TooLarge { store },
        (401 | 403, Some(hint)) => CallError::Store(StoreError::Rejected(format!(
            "{store} refused the API key ({status}: {message}); {hint}"
        ))),
        (s, _) if s == 408 || s == 429 || s >= 500 => CallError::Store(StoreError::Unavailable(
            format!("{store} answered {status}: {message}"),
        )),
        _ => CallError::Store(StoreError::Rejected(format!(
            "{store} answered {status}: {message}"
        ))),
    }
}

/// The collections a client has prepared with `ensure_collection`, by name, with what it
/// learnt of each (`T`: the model, the collection's id or generation).
pub(crate) struct Prepared<T> {
    by_name: RwLock<HashMap<String, T>>,
}

impl<T: Clone> Prepared<T> {
    pub(crate) fn new() -> Self {
        Prepared {
            by_name: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<T> {
        self.by_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The collection a write goes to; refused unless `ensure_collection` prepared it.
    pub(crate) fn for_write(&self, name: &str) -> Result<T, StoreError> {
        self.get(name).ok_or_else(|| {
            StoreError::Rejected(format!(
                "collection {name:?} was not prepared with ensure_collection"
            ))
        })
    }

    pub(crate) fn insert(&self, name: &str, prepared: T) {
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), prepared);
    }

    pub(crate) fn forget(&self, name: &str) {
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// A failed call on collection `name`: one that is gone is forgotten, and the failure
    /// is transient, since the retried sync creates it anew.
    pub(crate) fn failed(&self, name: &str, e: CallError) -> StoreError {
        match e {
            CallError::NotFound { store, message } => {
                self.forget(name);
                StoreError::Unavailable(format!(
                    "{store} collection {name:?} is gone ({message}); it is recreated on retry"
                ))
            }
            other => other.into(),
        }
    }

    /// A read of collection `name`: one that does not exist (any more) holds nothing.
    pub(crate) fn read<R>(
        &self,
        name: &str,
        r: Result<R, CallError>,
    ) -> Result<Option<R>, StoreError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(CallError::NotFound { .. }) => {
                self.forget(name);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(body: &[u8]) -> String {
        String::from_utf8_lossy(body).into_owned()
    }

    static WITH_KEY: Dialect = Dialect {
        name: "Store",
        error_message: plain,
        credentials_hint: Some("set STORE_API_KEY"),
    };
    static WITHOUT_KEY: Dialect = Dialect {
        name: "Store",
        error_message: plain,
        credentials_hint: None,
    };

    fn failure(dialect: &Dialect, status: u16) -> CallError {
        super::failure(dialect, StatusCode::from_u16(status).unwrap(), "why".into())
    }

    #[test]
    fn rate_limits_timeouts_and_server_errors_are_transient_other_answers_refusals() {
        for status in [408, 429, 500, 502, 503] {
            assert!(failure(&WITHOUT_KEY, status).is_transient(), "{status}");
        }
        for status in [400, 401, 422] {
            let e = failure(&WITHOUT_KEY, status);
            assert!(!e.is_transient(), "{status}");
            assert!(matches!(StoreError::from(e), StoreError::Rejected(m) if m.contains("why")));
        }
        assert!(failure(&WITHOUT_KEY, 413).is_too_large());
        assert!(matches!(
            failure(&WITHOUT_KEY, 404),
            CallError::NotFound { .. }
        ));
        assert!(matches!(
            failure(&WITHOUT_KEY, 409),
            CallError::Conflict { .. }
        ));
    }

    #[test]
    fn a_refused_key_says_how_to_set_it_where_the_store_takes_one() {
        match StoreError::from(failure(&WITH_KEY, 403)) {
            StoreError::Rejected(m) => assert!(m.contains("set STORE_API_KEY"), "{m}"),
            other => panic!("{other:?}"),
        }
        match StoreError::from(failure(&WITHOUT_KEY, 403)) {
            StoreError::Rejected(m) => assert!(!m.contains("API_KEY"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_collection_gone_under_cw_is_forgotten_and_its_failure_retried() {
        let prepared = Prepared::new();
        prepared.insert("c", 1);
        assert_eq!(prepared.for_write("c").unwrap(), 1);
        let gone = || CallError::NotFound {
            store: "Store",
            message: "no such collection".into(),
        };
        assert!(prepared.failed("c", gone()).is_transient());
        assert!(prepared.get("c").is_none());
        assert!(prepared.for_write("c").is_err());
        prepared.insert("c", 2);
        assert_eq!(prepared.read::<()>("c", Err(gone())).unwrap(), None);
        assert!(
            prepared.get("c").is_none(),
            "a read that finds it gone forgets it too"
        );
    }
}
