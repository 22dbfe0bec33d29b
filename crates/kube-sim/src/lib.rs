//! # kube-sim: a Kubernetes API simulator for tests, benchmarks and demos
//!
//! Speaks enough of the Kubernetes HTTP API (JSON answers; JSON or, for built-in kinds,
//! protobuf request bodies) that kube-rs (including
//! `kube::runtime::watcher`, metadata-only watches and streaming lists) and the real `kubectl`
//! work against it unchanged. Test support only: no production crate depends on it.
//! See `docs/simulator.md` for what it implements and where it differs from a real API server.
//!
//! ## Use from a test
//!
//! ```no_run
//! use kube_sim::{Fault, SimConfig, SimServer};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Binds 127.0.0.1 on a free port; stops when the handle is dropped.
//! let sim = SimServer::start(SimConfig::default().with_seed_path("deploy/demo")).await?;
//! let client = sim.client()?;                     // kube::Client for this simulator
//! let _config: kube::Config = sim.kube_config();  // or build your own client
//! sim.write_kubeconfig("/tmp/kubeconfig")?;       // for kubectl or a child process
//!
//! // Objects without HTTP (each write gets a resourceVersion and a watch event):
//! sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}}))?;
//! sim.patch("v1", "ConfigMap", Some("default"), "a", json!({"data": {"k": "w"}}))?; // merge patch
//! sim.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}))?; // create or replace
//! sim.delete("v1", "ConfigMap", Some("default"), "a")?;
//!
//! // Faults:
//! sim.drop_watches();      // every open watch ends; clients resume from their resourceVersion
//! sim.compact();           // history forgotten: resuming from before now gets 410 Expired
//! sim.pause(); sim.resume(); // requests (and watch deliveries) wait while paused
//! sim.inject_fault(Fault::error(503).on_resource("pods").on_verb("list").times(2));
//! sim.inject_fault(Fault::latency(std::time::Duration::from_millis(200)).on_verb("watch"));
//! // metrics.k8s.io listed in /apis but its discovery answering 503 for a minute:
//! sim.inject_fault(Fault::error(503).on_group("metrics.k8s.io")
//!     .for_duration(std::time::Duration::from_secs(60)));
//! // one 403 on the next watch of ConfigMaps (e.g. a reconnect after drop_watches):
//! sim.inject_fault(Fault::error(403).on_resource("configmaps").on_verb("watch").times(1));
//! sim.restart_api_server(); // every watch ends; resuming from any old resourceVersion is 410
//! let _still_in_force = sim.faults();
//! sim.clear_faults();
//! assert!(sim.request_count("configmaps", "watch") <= 10);
//! let _expired = sim.expired_watches(); // watches answered 410 so far
//! # drop(client); Ok(()) }
//! ```
//!
//! The admin API offers the same over HTTP under `/_sim/` (see `docs/simulator.md`).

mod access;
mod discovery;
pub mod error;
mod faults;
pub mod fleet;
pub mod generator;
mod issuer;
pub mod manifests;
pub mod patch;
mod protobuf;
pub mod resources;
mod scale;
mod seed;
pub mod selector;
mod server;
mod store;
mod token_request;
pub mod workloads;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

pub use error::SimError;
pub use faults::Fault;
pub use fleet::FleetMember;
pub use generator::{GeneratedCluster, GeneratorConfig};
pub use issuer::{ServiceAccountClaims, DEFAULT_ISSUER};
pub use manifests::custom_resource_definition;
pub use patch::PatchType;

use resources::split_api_version;
use server::Sim;
use store::Store;

/// How to start a simulator. `Default` binds a free port with no token.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The admin token: when set, every request (except /healthz, /readyz, /livez, /version)
    /// needs `Authorization: Bearer <token>` or a ServiceAccount token the simulator issued.
    /// When unset the simulator is open to all, but for requests that carry a ServiceAccount
    /// token or impersonation headers, which are authenticated and authorized with RBAC.
    pub token: Option<String>,
    /// The ServiceAccount token issuer (`--service-account-issuer`); every simulator signs
    /// with its own key made at start, so two with the same issuer still refuse each
    /// other's tokens.
    pub issuer: String,
    /// The audiences a ServiceAccount token must carry one of to authenticate at this API
    /// server (`--api-audiences`); empty: the issuer.
    pub api_audiences: Vec<String>,
    /// Events kept for watch resumption; older resourceVersions get 410 Expired.
    pub history_capacity: usize,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Manifest files or folders loaded at start, in order.
    pub seed_paths: Vec<PathBuf>,
    /// Generated objects added at start, after the manifests.
    pub generator: Option<GeneratorConfig>,
    /// Seed of uids and generateName suffixes.
    pub random_seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            port: 0,
            token: None,
            issuer: DEFAULT_ISSUER.to_string(),
            api_audiences: Vec::new(),
            history_capacity: 10_000,
            bookmark_interval: Duration::from_secs(5),
            seed_paths: Vec::new(),
            generator: None,
            random_seed: 1,
        }
    }
}

impl SimConfig {
    pub fn with_seed_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.seed_paths.push(path.into());
        self
    }

    pub fn with_generator(mut self, cfg: GeneratorConfig) -> Self {
        self.generator = Some(cfg);
        self
    }

    pub fn with_history_capacity(mut self, n: usize) -> Self {
        self.history_capacity = n;
        self
    }

    pub fn with_bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The ServiceAccount token issuer (default [`DEFAULT_ISSUER`], as kind's).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The API audiences ServiceAccount tokens must name one of (default: the issuer).
    pub fn with_api_audiences(mut self, audiences: &[&str]) -> Self {
        self.api_audiences = audiences.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Starts simulators.
pub struct SimServer;

impl SimServer {
    /// Binds 127.0.0.1, loads the seed manifests and the generator's objects, and serves in the
    /// current tokio runtime until the handle is dropped or [`SimHandle::shutdown`] is called.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|e| SimError::Io(format!("binding 127.0.0.1:{}: {e}", config.port)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SimError::Io(format!("reading the bound address: {e}")))?;
        let issuer = issuer::TokenIssuer::generate(&config.issuer, &config.api_audiences)?;
        let sim = Arc::new(Sim {
            store: Store::new(config.history_capacity, config.random_seed),
            faults: faults::Faults::default(),
            access: access::Access::new(issuer, config.token.clone()),
            bookmark_interval: config.bookmark_interval,
            addr,
            open_watches: AtomicUsize::new(0),
            aggregated: Default::default(),
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            seed::apply_object(
                &sim.store,
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?;
        }
        for p in &config.seed_paths {
            seed::load_path(&sim.store, p)?;
        }
        if let Some(g) = &config.generator {
            generator::generate(&sim.store, g)?;
        }
        let (tx, rx) = oneshot::channel::<()>();
        let app = server::router(sim.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        tracing::info!(%addr, objects = sim.store.object_count(), "kube-sim serving");
        Ok(SimHandle {
            sim,
            addr,
            token: config.token,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.faults.drop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn name_of(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube-rs configuration for this simulator (namespace `default`, the token if any).
    pub fn kube_config(&self) -> kube::Config {
        // The URL is built from a SocketAddr, so it always parses.
        let uri: http::Uri = self.url().parse().unwrap_or_default();
        let mut c = kube::Config::new(uri);
        c.default_namespace = "default".into();
        if let Some(t) = &self.token {
            c.auth_info.token = Some(t.as_str().into());
        }
        c
    }

    /// A kube-rs client for this simulator.
    pub fn client(&self) -> kube::Result<kube::Client> {
        kube::Client::try_from(self.kube_config())
    }

    /// A kube-rs configuration that authenticates with `token` (e.g. a ServiceAccount token
    /// from [`SimHandle::create_token`]) instead of the admin token.
    pub fn kube_config_with_token(&self, token: &str) -> kube::Config {
        let mut c = self.kube_config();
        c.auth_info.token = Some(token.into());
        c
    }

    /// The ServiceAccount token issuer (`iss` of the tokens, `issuer` of the discovery document).
    pub fn issuer(&self) -> String {
        self.sim.access.issuer.issuer().to_string()
    }

    /// What `GET /.well-known/openid-configuration` answers.
    pub fn openid_configuration(&self) -> Value {
        self.sim.access.issuer.openid_configuration()
    }

    /// What `GET /openid/v1/jwks` answers: the key set the simulator's tokens verify with.
    pub fn jwks(&self) -> Value {
        self.sim.access.issuer.jwks()
    }

    /// A token of ServiceAccount `namespace/name` (NotFound if it does not exist), as the
    /// TokenRequest API issues it, for `audiences` (the API audiences when empty), valid for
    /// `ttl` (whole seconds; unlike the API, shorter than 10 minutes is allowed, so a test can
    /// watch a token expire).
    pub fn create_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        ttl: Duration,
    ) -> Result<String, SimError> {
        let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
        let (token, _) = token_request::issue(
            &self.sim.store,
            &self.sim.access.issuer,
            namespace,
            name,
            &audiences,
            ttl.as_secs(),
        )?;
        Ok(token)
    }

    /// The simulator's Roles, ClusterRoles, bindings, served types and issuer in the shape a
    /// watcher sends them to cw (`cluster` unset).
    pub fn access_snapshot(&self) -> sync_model::rbac::AccessSnapshot {
        self.sim.access.snapshot(&self.sim.store)
    }

    /// A kubeconfig (context `kube-sim`, namespace `default`) that kubectl and kube-rs accept.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_named("kube-sim")
    }

    /// A kubeconfig whose cluster, user and context are all `name` (for a fleet member, its
    /// cluster id: `cw watch` takes the current context's name as its cluster id).
    pub fn kubeconfig_yaml_named(&self, name: &str) -> String {
        let user = match &self.token {
            Some(t) => format!("{{token: {t:?}}}"),
            None => "{}".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\ncurrent-context: {name}\nusers:\n- name: {name}\n  user: {user}\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        if let Some(dir) = path.as_ref().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.kubeconfig_yaml())
    }

    fn type_of(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Arc<resources::ResourceType>, SimError> {
        self.sim.store.type_for(api_version, kind)
    }

    /// The type, and the namespace an object of it is in: `namespace` (`default` when none is
    /// given) for a namespaced type, none for a cluster-scoped one.
    fn type_and_namespace<'a>(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&'a str>,
    ) -> Result<(Arc<resources::ResourceType>, &'a str), SimError> {
        let ty = self.type_of(api_version, kind)?;
        let ns = if ty.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        Ok((ty, ns))
    }

    fn as_version(o: &Arc<store::StoredObject>, api_version: &str) -> Value {
        let mut v = o.value();
        v["apiVersion"] = Value::String(api_version.to_string());
        v
    }

    /// Creates an object (409 AlreadyExists if taken); `metadata.namespace` defaults to `default`.
    pub fn create(&self, obj: Value) -> Result<Value, SimError> {
        let av = name_of(&obj, "/apiVersion");
        let ty = self.type_of(&av, &name_of(&obj, "/kind"))?;
        let ns = name_of(&obj, "/metadata/namespace");
        let ns = (!ns.is_empty()).then_some(ns.as_str());
        Ok(Self::as_version(&self.sim.store.create(&ty, ns, obj)?, &av))
    }

    /// Creates the object or replaces an existing one (keeping its status unless given),
    /// creating its namespace if missing, as seeding does.
    pub fn apply(&self, obj: Value) -> Result<Value, SimError> {
        let av = name_of(&obj, "/apiVersion");
        Ok(Self::as_version(
            &seed::apply_object(&self.sim.store, obj)?,
            &av,
        ))
    }

    /// Replaces an object; a `metadata.resourceVersion` in it must be current (409 Conflict).
    pub fn update(&self, obj: Value) -> Result<Value, SimError> {
        self.put(obj, false)
    }

    /// Replaces only the status of an object, as `PUT .../status` does.
    pub fn update_status(&self, obj: Value) -> Result<Value, SimError> {
        self.put(obj, true)
    }

    fn put(&self, obj: Value, status_only: bool) -> Result<Value, SimError> {
        let av = name_of(&obj, "/apiVersion");
        let ty = self.type_of(&av, &name_of(&obj, "/kind"))?;
        let ns = if ty.namespaced {
            let ns = name_of(&obj, "/metadata/namespace");
            if ns.is_empty() {
                "default".to_string()
            } else {
                ns
            }
        } else {
            String::new()
        };
        let name = name_of(&obj, "/metadata/name");
        Ok(Self::as_version(
            &self.sim.store.update(&ty, &ns, &name, obj, status_only)?,
            &av,
        ))
    }

    /// Applies a JSON merge patch to an object.
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) -> Result<Value, SimError> {
        self.patch_with(api_version, kind, namespace, name, PatchType::Merge, patch)
    }

    /// Applies a patch of any [`PatchType`] to an object.
    pub fn patch_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
    ) -> Result<Value, SimError> {
        self.on_object(api_version, kind, namespace, |store, ty, ns| {
            store.patch(ty, ns, name, patch_type, &patch, false)
        })
    }

    /// Runs `op` on the store with the type and namespace of `api_version`/`kind` in
    /// `namespace`, and answers the object it returns as `api_version`.
    fn on_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        op: impl FnOnce(
            &Store,
            &resources::ResourceType,
            &str,
        ) -> Result<Arc<store::StoredObject>, SimError>,
    ) -> Result<Value, SimError> {
        let (ty, ns) = self.type_and_namespace(api_version, kind, namespace)?;
        Ok(Self::as_version(
            &op(&self.sim.store, &ty, ns)?,
            api_version,
        ))
    }

    /// Deletes an object (and, for a namespace or a CRD, everything in or of it); returns its
    /// last state.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.on_object(api_version, kind, namespace, |store, ty, ns| {
            store.delete(ty, ns, name)
        })
    }

    /// One object (404 NotFound error if absent).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        self.on_object(api_version, kind, namespace, |store, ty, ns| {
            store.get(ty, ns, name)
        })
    }

    /// All objects of a type, in one namespace or all (`None`), ordered by namespace and name.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, SimError> {
        let ty = self.type_of(api_version, kind)?;
        let q = store::ListQuery {
            namespace: namespace.map(str::to_string),
            ..Default::default()
        };
        let page = self.sim.store.list(&ty, &q)?;
        Ok(page
            .items
            .iter()
            .map(|o| Self::as_version(o, api_version))
            .collect())
    }

    /// `namespace/name` (`_cluster/name` for a cluster-scoped object) → labels of every
    /// object of a type: what an index of the cluster should hold, to compare with it.
    pub fn labels_by_name(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, SimError> {
        Ok(self
            .list(api_version, kind, None)?
            .into_iter()
            .map(|o| {
                let m = &o["metadata"];
                let key = format!(
                    "{}/{}",
                    m["namespace"].as_str().unwrap_or("_cluster"),
                    m["name"].as_str().unwrap_or_default()
                );
                let labels = serde_json::from_value(m["labels"].clone()).unwrap_or_default();
                (key, labels)
            })
            .collect())
    }

    /// Loads a manifest file or folder; returns how many objects were applied.
    pub fn load_manifests(&self, path: impl AsRef<Path>) -> Result<usize, SimError> {
        seed::load_path(&self.sim.store, path.as_ref())
    }

    /// Applies the documents of a YAML or JSON text; returns how many objects were applied.
    pub fn apply_manifests(&self, text: &str) -> Result<usize, SimError> {
        seed::apply_manifests(&self.sim.store, text, "manifest text")
    }

    /// Adds cluster `index` of a fleet of `clusters`, `objects` objects (deterministic from
    /// `seed` and `index`; see [`fleet`]).
    pub fn generate_fleet_member(
        &self,
        seed: u64,
        index: usize,
        clusters: usize,
        objects: usize,
    ) -> Result<FleetMember, SimError> {
        fleet::generate_member(&self.sim.store, seed, index, clusters, objects)
    }

    /// Adds a generated cluster (deterministic from `cfg.seed`).
    pub fn generate(&self, cfg: &GeneratorConfig) -> Result<GeneratedCluster, SimError> {
        generator::generate(&self.sim.store, cfg)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.sim.store.resource_version()
    }

    pub fn object_count(&self) -> usize {
        self.sim.store.object_count()
    }

    /// `(apiVersion, kind, plural, namespaced)` of every served type, preferred versions.
    pub fn served_types(&self) -> Vec<(String, String, String, bool)> {
        self.sim
            .store
            .types()
            .iter()
            .map(|t| {
                (
                    t.api_version(t.preferred_version()),
                    t.kind.clone(),
                    t.plural.clone(),
                    t.namespaced,
                )
            })
            .collect()
    }

    /// Ends every open watch (clients see their stream close); returns how many were open.
    pub fn drop_watches(&self) -> usize {
        let n = self.open_watches();
        self.sim.faults.drop_watches();
        n
    }

    /// Watches currently being served.
    pub fn open_watches(&self) -> usize {
        self.sim.open_watches.load(Ordering::SeqCst)
    }

    /// Forgets the event history: a watch resuming from an older resourceVersion gets a 410
    /// Expired ERROR event, and paginated lists in flight get 410 on `continue`.
    pub fn compact(&self) {
        self.sim.store.compact();
    }

    /// Stops answering: requests and watch deliveries wait until [`SimHandle::resume`].
    pub fn pause(&self) {
        self.sim.faults.set_paused(true);
    }

    pub fn resume(&self) {
        self.sim.faults.set_paused(false);
    }

    /// Injects a fault (see [`Fault`]); a discovery fault ([`Fault::on_group`]) on a group the
    /// simulator does not serve lists that group in `/apis` as an aggregated API from then on.
    pub fn inject_fault(&self, fault: Fault) {
        self.sim.inject_fault(fault);
    }

    /// The faults still in force (used-up and expired ones are gone).
    pub fn faults(&self) -> Vec<Fault> {
        self.sim.faults.list()
    }

    /// Lists an aggregated API group (e.g. `metrics.k8s.io`, `v1beta1`) in discovery, with no
    /// resources of its own, as an APIService does.
    pub fn add_aggregated_group(&self, group: &str, version: &str) {
        self.sim.add_aggregated_group(group, version);
    }

    /// An API server restart as watchers see it: every open watch ends, and a watch resuming
    /// from any resourceVersion handed out before gets 410 Expired, so every watcher relists.
    /// Objects are kept. Returns how many watches were open. (For downtime, [`SimHandle::pause`]
    /// first and [`SimHandle::resume`] after.)
    pub fn restart_api_server(&self) -> usize {
        let n = self.open_watches();
        self.sim.restart();
        n
    }

    pub fn clear_faults(&self) {
        self.sim.faults.clear();
    }

    /// Requests served for a resource (plural, e.g. `pods`) and verb (get, list, watch, create,
    /// update, patch, delete, deletecollection).
    pub fn request_count(&self, resource: &str, verb: &str) -> u64 {
        self.sim.faults.count(resource, verb)
    }

    /// Every counter as `plural/verb -> count`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.sim.faults.counts()
    }

    pub fn reset_request_counts(&self) {
        self.sim.faults.reset_counts();
    }

    /// Watches answered with 410 Expired so far.
    pub fn expired_watches(&self) -> u64 {
        self.sim.faults.count("_expired", "watch")
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.sim.faults.drop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// The group and version of an `apiVersion` string.
pub fn api_group_version(api_version: &str) -> (&str, &str) {
    split_api_version(api_version)
}
