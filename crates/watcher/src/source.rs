//! Source: one metadata-only watch per resource type (kube-runtime `watcher` over
//! `PartialObjectMeta`), turned into observations for change detection, and the watch of
//! CustomResourceDefinitions that tells the controller which API groups changed.
//! kube-runtime resumes from the last resourceVersion after a dropped watch and relists
//! after a 410 Gone; a relist arrives as `RelistStart`, the listed objects, `RelistDone`,
//! so that objects deleted meanwhile are noticed and nothing is invented.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use sync_model::ResourceInstance;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::discovery::{NamespaceFilter, ResourceType};
use crate::extract::extract_instance;
use crate::metrics::{Metrics, TypeLabels};
use crate::tracker::{Input, Observation};

type Meta = PartialObjectMeta<DynamicObject>;

fn meta_api(client: &kube::Client, ty: &ResourceType) -> Api<Meta> {
    Api::all_with(client.clone(), &ty.api_resource())
}

/// The indexed view of a watched object, if its namespace is admitted.
fn admitted(ty: &ResourceType, ns: &NamespaceFilter, obj: &Meta) -> Option<ResourceInstance> {
    if ty.namespaced && !ns.admits(obj.metadata.namespace.as_deref()) {
        return None;
    }
    match extract_instance(ty, &obj.metadata) {
        Ok(i) => Some(i),
        Err(e) => {
            debug!(error = %e, "skipping object");
            None
        }
    }
}

/// True when the API server refuses this client the type (403): RBAC does not grant list
/// or watch on it. Retrying cannot help until the rules change.
fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

/// Watches one type until cancelled, sending observations to change detection. A type the
/// API server forbids (403) is reported as [`Input::Forbidden`] and its watch ends: the
/// watcher then does without it instead of waiting for it forever; the next rediscovery
/// or resync tries it again. The initial list waits for one of `list_slots` and holds it
/// until the list is done, which bounds how many lists are in memory at once.
pub async fn watch_type(
    client: kube::Client,
    list_slots: Arc<Semaphore>,
    ty: ResourceType,
    namespaces: NamespaceFilter,
    out: mpsc::Sender<Input>,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let key = ty.key();
    let labels = TypeLabels {
        resource_type: key.to_string(),
    };
    let events_seen = metrics.events_seen.get_or_create(&labels).clone();
    let errors = metrics.watch_errors.get_or_create(&labels).clone();
    let mut list_slot = tokio::select! {
        _ = cancel.cancelled() => return,
        // Closed: never done, but then there is nothing to bound.
        slot = list_slots.acquire_owned() => slot.ok(),
    };
    let stream =
        watcher::watcher(meta_api(&client, &ty), watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        let Some(event) = event else { return };
        let obs = match event {
            Err(e) if is_forbidden(&e) => {
                errors.inc();
                warn!(
                    resource_type = %key,
                    error = %e,
                    "access to this type is forbidden (RBAC); not watching it"
                );
                let _ = out.send(Input::Forbidden(key.clone())).await;
                return;
            }
            Err(e) => {
                errors.inc();
                warn!(resource_type = %key, error = %e, "watch failed; resuming");
                continue;
            }
            Ok(Event::Init) => Observation::RelistStart,
            Ok(Event::InitDone) => {
                // The first list is done: let the next type list.
                drop(list_slot.take());
                Observation::RelistDone
            }
            Ok(Event::InitApply(obj)) | Ok(Event::Apply(obj)) => {
                events_seen.inc();
                match admitted(&ty, &namespaces, &obj) {
                    Some(i) => Observation::Present(i),
                    None => continue,
                }
            }
            Ok(Event::Delete(obj)) => {
                events_seen.inc();
                match admitted(&ty, &namespaces, &obj) {
                    Some(i) => Observation::Gone(i.id),
                    None => continue,
                }
            }
        };
        if out.send(Input::Observed(key.clone(), obs)).await.is_err() {
            return;
        }
    }
}

/// Watches CustomResourceDefinitions (metadata only) and reports the group of each one that
/// is created, changed or deleted (a CRD's name is `<plural>.<group>`), or `None` when the
/// CRD watch had to relist (after a 410) and anything may have changed.
pub async fn watch_crds(
    client: kube::Client,
    groups: mpsc::Sender<Option<String>>,
    cancel: CancellationToken,
) {
    let ty = ResourceType::new(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    );
    let mut stream =
        std::pin::pin!(
            watcher::watcher(meta_api(&client, &ty), watcher::Config::default()).default_backoff()
        );
    let mut first_list = true;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let report = match event {
            None => return,
            // Existing CRDs are covered by the full discovery at start; a later relist
            // may hide any number of changes, so it asks for a full rediscovery.
            Some(Ok(Event::InitDone)) if first_list => {
                first_list = false;
                continue;
            }
            Some(Ok(Event::InitDone)) => None,
            Some(Ok(Event::Init | Event::InitApply(_))) => continue,
            Some(Ok(Event::Apply(obj) | Event::Delete(obj))) => {
                match obj.metadata.name.as_deref().and_then(|n| n.split_once('.')) {
                    Some((_, group)) => Some(group.to_string()),
                    None => continue,
                }
            }
            Some(Err(e)) => {
                warn!(error = %e, "CRD watch failed; resuming");
                continue;
            }
        };
        if groups.send(report).await.is_err() {
            return;
        }
    }
}

/// Lists one type page by page (metadata only), calling `page` with each page's admitted
/// instances. Used by resync and by `cw sync-instances`.
pub async fn list_type<F, Fut>(
    client: &kube::Client,
    ty: &ResourceType,
    namespaces: &NamespaceFilter,
    page_size: u32,
    mut page: F,
) -> Result<usize, kube::Error>
where
    F: FnMut(Vec<ResourceInstance>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let api = meta_api(client, ty);
    let mut params = ListParams::default().limit(page_size);
    let mut total = 0;
    loop {
        let list = api.list(&params).await?;
        let items: Vec<ResourceInstance> = list
            .items
            .iter()
            .filter_map(|obj| admitted(ty, namespaces, obj))
            .collect();
        total += items.len();
        page(items).await;
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(total),
        }
    }
}
