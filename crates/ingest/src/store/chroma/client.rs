//! Chroma's calls, made through the shared plumbing of store servers ([`remote`]): none is
//! retried here, since writes wait for one write turn and the sender retries the whole
//! sync. And the tenant and database, which Chroma needs before any collection and cw
//! creates on first use.
//!
//! [`remote`]: crate::store::remote

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use super::{wire, ChromaStore};
use crate::store::remote::{CallError, Dialect};
use crate::store::StoreError;

pub(super) static CHROMA: Dialect = Dialect {
    name: "Chroma",
    error_message: wire::error_message,
    credentials_hint: None,
};

impl ChromaStore {
    pub(super) async fn call(&self, req: reqwest::RequestBuilder) -> Result<Bytes, CallError> {
        self.http.send(req).await
    }

    pub(super) async fn call_json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        self.http.parse(&self.call(req).await?)
    }

    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<T, CallError> {
        self.call_json(self.http.client.post(url).json(body)).await
    }

    /// Creates the tenant and database if they do not exist (Chroma starts with only
    /// `default_tenant`/`default_database`).
    pub(super) async fn ensure_database(&self) -> Result<(), StoreError> {
        self.database_ready
            .get_or_try_init(|| async {
                let tenants = format!("{}/tenants", self.api);
                let tenant = &self.config.tenant;
                self.ensure_exists(&tenants, tenant).await?;
                let databases = format!("{tenants}/{tenant}/databases");
                self.ensure_exists(&databases, &self.config.database).await
            })
            .await
            .map(|_| ())
    }

    /// Creates `{list}/{name}` by a `POST {list}` unless it exists.
    async fn ensure_exists(&self, list: &str, name: &str) -> Result<(), StoreError> {
        match self
            .call(self.http.client.get(format!("{list}/{name}")))
            .await
        {
            Ok(_) => Ok(()),
            Err(CallError::NotFound { .. }) => {
                let created = self
                    .call(self.http.client.post(list).json(&json!({ "name": name })))
                    .await;
                ignore_conflict(created)
            }
            Err(e) => Err(StoreError::from(e)),
        }
    }
}

fn ignore_conflict(r: Result<Bytes, CallError>) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: what we wanted.
        Err(CallError::Conflict { .. }) => Ok(()),
        Err(CallError::Store(StoreError::Rejected(m))) if m.contains("already exists") => Ok(()),
        Err(e) => Err(e.into()),
    }
}
