//! Source: one watch per resource type, turned into observations for change detection, and
//! the watch of CustomResourceDefinitions that tells the controller which API groups changed.
//! Most types are watched as metadata only (kube-runtime `watcher` over `PartialObjectMeta`);
//! the types whose health and images cw reads ([`ResourceType::reads_status`]) as whole
//! objects, each reduced to its `ResourceInstance` as it arrives: no object is kept.
//! kube-runtime resumes from the last resourceVersion after a dropped watch and relists
//! after a 410 Gone; a relist arrives as `RelistStart`, the listed objects, `RelistDone`,
//! so that objects deleted meanwhile are noticed and nothing is invented.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, ObjectList, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use prometheus_client::metrics::counter::Counter;
use sync_model::ResourceInstance;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::context::Context;
use crate::discovery::{NamespaceFilter, ResourceType, TypeKey};
use crate::extract::{extract_instance, extract_with_status};
use crate::metrics::TypeLabels;
use crate::tracker::{Input, Observation};

type Meta = PartialObjectMeta<DynamicObject>;

fn meta_api(client: &kube::Client, ty: &ResourceType) -> Api<Meta> {
    Api::all_with(client.clone(), &ty.api_resource())
}

fn object_api(client: &kube::Client, ty: &ResourceType) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ty.api_resource())
}

/// The indexed view of a watched object, if its namespace is admitted.
fn admitted(ty: &ResourceType, ns: &NamespaceFilter, obj: &Meta) -> Option<ResourceInstance> {
    admit(ty, ns, &obj.metadata, || {
        extract_instance(ty, &obj.metadata)
    })
}

/// [`admitted`] for a whole object: with its health and images.
fn admitted_whole(
    ty: &ResourceType,
    ns: &NamespaceFilter,
    obj: &DynamicObject,
) -> Option<ResourceInstance> {
    admit(ty, ns, &obj.metadata, || extract_with_status(ty, obj))
}

fn admit(
    ty: &ResourceType,
    ns: &NamespaceFilter,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    extract: impl FnOnce() -> Result<ResourceInstance, crate::ExtractError>,
) -> Option<ResourceInstance> {
    if ty.namespaced && !ns.admits(meta.namespace.as_deref()) {
        return None;
    }
    match extract() {
        Ok(i) => Some(i),
        Err(e) => {
            debug!(error = %e, "skipping object");
            None
        }
    }
}

/// Objects per list request when whole objects are read: a page is held whole until its
/// last object is extracted, and a custom resource with its status is several times its
/// metadata (kube's default page is 500). Measured with scripts/bench-watch-binary.
const WHOLE_OBJECT_PAGE: u32 = 100;

/// A watch event reduced to what change detection needs: the instance (`None` when the
/// object is not admitted). Whole objects are dropped here, as soon as they arrive.
type Seen = Option<ResourceInstance>;

fn reduce<K>(event: Event<K>, view: impl Fn(&K) -> Seen) -> Event<Seen> {
    match event {
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(view(&o)),
        Event::InitDone => Event::InitDone,
        Event::Apply(o) => Event::Apply(view(&o)),
        Event::Delete(o) => Event::Delete(view(&o)),
    }
}

/// The watch of one type: whole objects when the type's health is read, else metadata.
fn watch_stream(
    client: &kube::Client,
    ty: &ResourceType,
    namespaces: &NamespaceFilter,
) -> BoxStream<'static, Result<Event<Seen>, watcher::Error>> {
    let (ty, ns) = (ty.clone(), namespaces.clone());
    if ty.reads_status() {
        let config = watcher::Config::default().page_size(WHOLE_OBJECT_PAGE);
        watcher::watcher(object_api(client, &ty), config)
            .default_backoff()
            .map(move |r| r.map(|e| reduce(e, |o| admitted_whole(&ty, &ns, o))))
            .boxed()
    } else {
        watcher::watcher(meta_api(client, &ty), watcher::Config::default())
            .default_backoff()
            .map(move |r| r.map(|e| reduce(e, |o| admitted(&ty, &ns, o))))
            .boxed()
    }
}

/// True when the API server refuses this client the type (403): RBAC does not grant list
/// or watch on it, or no longer does, or not yet (a `helm upgrade` propagating its rules).
fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

/// Two 403s further apart than this belong to two refusals, not one sustained refusal:
/// kube's watcher retries a failing watch at most every 30 s (its default backoff).
const FORBIDDEN_STREAK_GAP: Duration = Duration::from_secs(120);

/// A run of 403s on one type: since when, and whether its documents were given up.
#[derive(Debug, Default)]
struct Refusal {
    since: Option<Instant>,
    last: Option<Instant>,
    documents_removed: bool,
}

/// What a 403 means at this moment of a refusal.
#[derive(Debug, PartialEq, Eq)]
enum RefusalStep {
    /// The first 403 of a refusal: report it, keep the documents.
    Began,
    /// Still refused, within the grace period.
    Continues,
    /// Refused for the whole grace period: the documents go.
    Sustained,
}

impl Refusal {
    fn on_forbidden(&mut self, now: Instant, grace: Duration) -> RefusalStep {
        let continues = self
            .last
            .is_some_and(|last| now.duration_since(last) <= FORBIDDEN_STREAK_GAP);
        self.last = Some(now);
        if !continues {
            *self = Refusal {
                since: Some(now),
                last: Some(now),
                documents_removed: false,
            };
            return RefusalStep::Began;
        }
        let since = self.since.unwrap_or(now);
        if !self.documents_removed && now.duration_since(since) >= grace {
            self.documents_removed = true;
            return RefusalStep::Sustained;
        }
        RefusalStep::Continues
    }

    /// The type answered: the refusal is over. True when one was under way.
    fn on_success(&mut self) -> bool {
        std::mem::take(self).since.is_some()
    }
}

/// Watches one type until cancelled, sending observations to change detection.
///
/// Errors are not deletions: kube's watcher retries a failed list or watch with backoff,
/// and a 403 only marks the type as refused ([`Input::Forbidden`], so readiness does not
/// wait for it) while its stored documents stay. Only a refusal that lasts `forbidden_grace`
/// removes them ([`Input::AccessLost`]); the watch then starts over with a fresh list, so
/// that everything is sent again once access comes back.
///
/// Each (re)list, the first one and every relist after a 410 Gone, waits for one of
/// `list_slots` and holds it until the list is done or fails: that bounds how many lists
/// are in memory at once, also when an API server restart makes every type relist.
pub(crate) async fn watch_type(
    ctx: Arc<Context>,
    list_slots: Arc<Semaphore>,
    ty: ResourceType,
    cancel: CancellationToken,
) {
    let mut watch = TypeWatch::new(ctx, list_slots, &ty, cancel);
    loop {
        let stream = watch_stream(&watch.ctx.client, &ty, &watch.ctx.settings.namespaces);
        match watch.follow(stream).await {
            // Start over: once access returns, the fresh list sends everything.
            Next::Restart => continue,
            Next::Go | Next::Stop => return,
        }
    }
}

/// What the watch of a type does after an event.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Go on with the next event.
    Go,
    /// Drop the stream and watch the type again from a fresh list.
    Restart,
    /// Cancelled, or change detection is gone: stop.
    Stop,
}

/// One type's watch: where its observations go, its counters, its refusal and the list
/// slot it holds while listing.
struct TypeWatch {
    ctx: Arc<Context>,
    key: TypeKey,
    cancel: CancellationToken,
    list_slots: Arc<Semaphore>,
    list_slot: Option<OwnedSemaphorePermit>,
    refusal: Refusal,
    events_seen: Counter,
    errors: Counter,
}

impl TypeWatch {
    fn new(
        ctx: Arc<Context>,
        list_slots: Arc<Semaphore>,
        ty: &ResourceType,
        cancel: CancellationToken,
    ) -> Self {
        let key = ty.key();
        let labels = TypeLabels {
            resource_type: key.to_string(),
        };
        let events_seen = ctx.metrics.events_seen.get_or_create(&labels).clone();
        let errors = ctx.metrics.watch_errors.get_or_create(&labels).clone();
        TypeWatch {
            events_seen,
            errors,
            ctx,
            key,
            cancel,
            list_slots,
            list_slot: None,
            refusal: Refusal::default(),
        }
    }

    /// Follows one stream of the type's watch until it must restart or stop.
    async fn follow(
        &mut self,
        mut stream: BoxStream<'static, Result<Event<Seen>, watcher::Error>>,
    ) -> Next {
        self.list_slot = None;
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return Next::Stop,
                event = stream.next() => event,
            };
            let next = match event {
                None => Next::Stop,
                Some(Err(e)) => self.on_error(e).await,
                Some(Ok(event)) => self.on_event(event).await,
            };
            if next != Next::Go {
                return next;
            }
        }
    }

    /// Sends `input` to change detection; false when the watch should stop.
    async fn send(&self, input: Input) -> bool {
        // A full inbox must not keep a cancelled watch from ending.
        self.cancel
            .run_until_cancelled(self.ctx.inputs.send(input))
            .await
            .is_some_and(|r| r.is_ok())
    }

    /// A failed list or watch: kube's watcher retries it; a 403 goes through the refusal.
    async fn on_error(&mut self, e: watcher::Error) -> Next {
        let key = &self.key;
        self.errors.inc();
        // A failed list is retried from the start: let another type list meanwhile.
        drop(self.list_slot.take());
        if !is_forbidden(&e) {
            warn!(resource_type = %key, error = %e, "watch failed; retrying with backoff");
            return Next::Go;
        }
        let grace = self.ctx.settings.forbidden_grace;
        match self.refusal.on_forbidden(Instant::now(), grace) {
            RefusalStep::Began => {
                warn!(
                    resource_type = %key,
                    error = %e,
                    grace_s = grace.as_secs(),
                    "access to this type is refused (403); retrying with backoff, its stored documents are kept for the grace period"
                );
                go_on(self.send(Input::Forbidden(key.clone())).await)
            }
            RefusalStep::Continues => {
                debug!(resource_type = %key, "still refused (403)");
                Next::Go
            }
            RefusalStep::Sustained => {
                warn!(
                    resource_type = %key,
                    grace_s = grace.as_secs(),
                    "access to this type refused for the whole grace period; removing its documents (they return once access does)"
                );
                if self.send(Input::AccessLost(key.clone())).await {
                    Next::Restart
                } else {
                    Next::Stop
                }
            }
        }
    }

    /// An event of the watch, as an observation for change detection.
    async fn on_event(&mut self, event: Event<Seen>) -> Next {
        if self.refusal.on_success() {
            info!(resource_type = %self.key, "access to this type restored");
        }
        let obs = match event {
            Event::Init => {
                if self.list_slot.is_none() {
                    self.list_slot = tokio::select! {
                        _ = self.cancel.cancelled() => return Next::Stop,
                        // Closed: never done, but then there is nothing to bound.
                        slot = self.list_slots.clone().acquire_owned() => slot.ok(),
                    };
                }
                Observation::RelistStart
            }
            Event::InitDone => {
                // The list is done: let the next type list.
                drop(self.list_slot.take());
                Observation::RelistDone
            }
            Event::InitApply(seen) | Event::Apply(seen) => {
                self.events_seen.inc();
                match seen {
                    Some(i) => Observation::Present(i),
                    None => return Next::Go,
                }
            }
            Event::Delete(seen) => {
                self.events_seen.inc();
                match seen {
                    Some(i) => Observation::Gone(i.id),
                    None => return Next::Go,
                }
            }
        };
        go_on(self.send(Input::Observed(self.key.clone(), obs)).await)
    }
}

/// Go on when the observation was sent; stop when change detection is gone.
fn go_on(sent: bool) -> Next {
    if sent {
        Next::Go
    } else {
        Next::Stop
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

/// Lists one type page by page (metadata only, or whole objects for the types whose health
/// is read, exactly as the watch sees them), calling `page` with each page's admitted
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
    let page_size = if ty.reads_status() {
        page_size.min(WHOLE_OBJECT_PAGE)
    } else {
        page_size
    };
    let mut params = ListParams::default().limit(page_size);
    let mut total = 0;
    loop {
        let (items, next) = if ty.reads_status() {
            let list = object_api(client, ty).list(&params).await?;
            admitted_page(list, |obj| admitted_whole(ty, namespaces, obj))
        } else {
            let list = meta_api(client, ty).list(&params).await?;
            admitted_page(list, |obj| admitted(ty, namespaces, obj))
        };
        total += items.len();
        page(items).await;
        match next.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(total),
        }
    }
}

/// The instances `admit` keeps of a listed page, and the page's continue token.
fn admitted_page<K>(
    list: ObjectList<K>,
    admit: impl Fn(&K) -> Option<ResourceInstance>,
) -> (Vec<ResourceInstance>, Option<String>)
where
    K: Clone,
{
    (
        list.items.iter().filter_map(admit).collect(),
        list.metadata.continue_,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal begun now by a first 403, with the grace period of ten minutes.
    fn a_refusal_begun() -> (Refusal, Instant, Duration) {
        let grace = Duration::from_secs(600);
        let t0 = Instant::now();
        let mut r = Refusal::default();
        assert_eq!(r.on_forbidden(t0, grace), RefusalStep::Began);
        (r, t0, grace)
    }

    #[test]
    fn a_refusal_removes_documents_only_once_it_lasted_the_grace_period() {
        let (mut r, t0, grace) = a_refusal_begun();
        // Retries every 30 s for nearly ten minutes: still within the grace period.
        let mut t = t0;
        for _ in 0..19 {
            t += Duration::from_secs(30);
            assert_eq!(r.on_forbidden(t, grace), RefusalStep::Continues);
        }
        t += Duration::from_secs(30);
        assert_eq!(r.on_forbidden(t, grace), RefusalStep::Sustained);
        t += Duration::from_secs(30);
        assert_eq!(
            r.on_forbidden(t, grace),
            RefusalStep::Continues,
            "removed once"
        );
    }

    #[test]
    fn a_success_or_a_long_gap_between_two_403s_starts_a_new_refusal() {
        let (mut r, t0, grace) = a_refusal_begun();
        assert!(r.on_success());
        assert!(!r.on_success());
        let t1 = t0 + Duration::from_secs(700);
        assert_eq!(r.on_forbidden(t1, grace), RefusalStep::Began);
        // One 403 now and another an hour later: two short refusals, nothing removed.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(r.on_forbidden(t2, grace), RefusalStep::Began);
    }
}
