//! The clusters the MCP server reads live besides its own: a directory of kubeconfigs, one
//! file per cluster, named by the cluster's id in the index (`prod-eu`, no extension), each
//! read with its current context. Read at start (a bad file stops the start, naming it) and
//! again every [`RELOAD_EVERY`] when a file changed (a bad file then keeps the connections
//! last read, with an error in the log), so that a Secret mounted as the directory can be
//! rotated without a restart. The fleet design's `clusterSecretRef`: docs/fleet.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use mcp::{CancellationToken, ClusterAccess, Connections, LiveCluster, LiveClusters};
use sync_model::ClusterId;

use super::cluster::KubeCluster;

/// How often the directory is read again for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// A live read is one request a model waits for: it fails fast rather than hold the tool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// A directory of kubeconfigs, one per cluster that get_resource may read live: each
    /// file is named by the cluster's id in the index (e.g. `prod-eu`, no extension) and
    /// read with its current context. Give read-only credentials (docs/fleet.md). Read at
    /// start and again every 30 s when a file changes; names starting with `.` are skipped.
    #[arg(long, env = "CW_CLUSTER_KUBECONFIGS")]
    pub cluster_kubeconfigs: Option<PathBuf>,
}

impl ConnectionArgs {
    /// The clusters `command` reads live: `own` (cw run's cluster, cw mcp's --kubeconfig)
    /// and those of the directory, kept up to date until `stop` is cancelled.
    pub async fn access(
        &self,
        own: Connections,
        command: &str,
        stop: CancellationToken,
    ) -> anyhow::Result<ClusterAccess> {
        let Some(dir) = &self.cluster_kubeconfigs else {
            let hint = format!(
                "{command} reads a cluster live from a kubeconfig named after the cluster's id \
                 in the directory of --cluster-kubeconfigs (CW_CLUSTER_KUBECONFIGS; in the \
                 chart, ingest.clusterKubeconfigs.secretName), with read-only credentials \
                 (docs/fleet.md)."
            );
            return Ok(ClusterAccess::new(LiveClusters::new(own), hint));
        };
        let mut directory = KubeconfigDir::read(dir.clone(), own).await?;
        let clusters = directory.clusters.clone();
        tracing::info!(
            dir = %dir.display(),
            clusters = ?directory.ids(),
            "reading these clusters live for get_resource"
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RELOAD_EVERY) => directory.reload().await,
                }
            }
        });
        let hint = format!(
            "{command} reads clusters live from the kubeconfigs in {} (--cluster-kubeconfigs), \
             one file named after each cluster's id: add one for this cluster, with read-only \
             credentials (docs/fleet.md).",
            dir.display()
        );
        Ok(ClusterAccess::new(clusters, hint))
    }
}

/// The directory, the connections made from it and the file contents they were made from.
struct KubeconfigDir {
    dir: PathBuf,
    /// Connections that do not come from the directory; they win over a file of the same id.
    own: Connections,
    read: BTreeMap<String, (Vec<u8>, Arc<dyn LiveCluster>)>,
    clusters: LiveClusters,
}

impl KubeconfigDir {
    async fn read(dir: PathBuf, own: Connections) -> anyhow::Result<Self> {
        let mut this = KubeconfigDir {
            dir,
            own,
            read: BTreeMap::new(),
            clusters: LiveClusters::default(),
        };
        this.read = this.connect().await?;
        this.publish();
        Ok(this)
    }

    fn ids(&self) -> Vec<String> {
        self.clusters.current().keys().cloned().collect()
    }

    /// Reads the directory again; on a change, the new connections replace the old ones.
    async fn reload(&mut self) {
        match self.connect().await {
            Ok(read) => {
                let changed = read.len() != self.read.len()
                    || read
                        .iter()
                        .any(|(id, (text, _))| self.read.get(id).is_none_or(|(t, _)| t != text));
                if changed {
                    self.read = read;
                    self.publish();
                    tracing::info!(clusters = ?self.ids(), "cluster kubeconfigs reloaded");
                }
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "cluster kubeconfigs not reloaded; keeping the connections last read"
            ),
        }
    }

    fn publish(&self) {
        let mut connections: Connections = self
            .read
            .iter()
            .map(|(id, (_, live))| (id.clone(), live.clone()))
            .collect();
        for (id, live) in &self.own {
            if connections.insert(id.clone(), live.clone()).is_some() {
                tracing::info!(
                    cluster = %id,
                    "a kubeconfig in the directory names this process's own cluster; its own client is used"
                );
            }
        }
        self.clusters.replace(connections);
    }

    /// A connection per file, reusing those whose file did not change.
    async fn connect(&self) -> anyhow::Result<BTreeMap<String, (Vec<u8>, Arc<dyn LiveCluster>)>> {
        let mut out = BTreeMap::new();
        for (id, path) in kubeconfig_files(&self.dir)? {
            let text = std::fs::read(&path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            let live = match self.read.get(&id) {
                Some((old, live)) if *old == text => live.clone(),
                _ => connect(&path).await?,
            };
            out.insert(id, (text, live));
        }
        Ok(out)
    }
}

/// The kubeconfig files of `dir` by cluster id. Names starting with `.` are skipped (a
/// mounted Secret's `..data` and its timestamped directories); any other name must be a
/// cluster id.
fn kubeconfig_files(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "reading the directory of cluster kubeconfigs {} (--cluster-kubeconfigs)",
            dir.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        // Follows symbolic links: a Secret's keys are links into its `..data`.
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        match ClusterId::new(&name) {
            Ok(id) if id.as_str() == name => {
                out.insert(name, path);
            }
            _ => anyhow::bail!(
                "{} is not named by a cluster id: name each kubeconfig in {} after its \
                 cluster's id in the index (e.g. prod-eu, lowercase letters, digits and '-', \
                 no extension)",
                path.display(),
                dir.display()
            ),
        }
    }
    Ok(out)
}

/// A live reader over the current context of the kubeconfig at `path`.
async fn connect(path: &Path) -> anyhow::Result<Arc<dyn LiveCluster>> {
    let config = config_of(path).await?;
    let live = KubeCluster::from_config(config)
        .with_context(|| format!("building a Kubernetes client from {}", path.display()))?;
    Ok(Arc::new(live))
}

/// A Kubernetes client for the current context of the kubeconfig at `path`, with the
/// timeouts of a live read.
pub async fn client_of(path: &Path) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config_of(path).await?)
        .with_context(|| format!("building a Kubernetes client from {}", path.display()))
}

/// The configuration [`client_of`] builds its client from.
pub async fn config_of(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    anyhow::ensure!(
        kubeconfig.current_context.is_some(),
        "the kubeconfig {} has no current-context: set one (kubectl config use-context)",
        path.display()
    );
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading the kubeconfig {}", path.display()))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(server: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        )
    }

    /// A folder holding one kubeconfig file, `name`, of a cluster at `server` (and the
    /// crypto provider the connections need).
    fn folder_with(name: &str, server: &str) -> tempfile::TempDir {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), kubeconfig(server)).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_directory_is_read_by_file_name_and_again_when_it_changes() {
        let dir = folder_with("alpha", "https://a.example:6443");
        std::fs::create_dir(dir.path().join("..2026_01_01")).unwrap();
        std::fs::write(dir.path().join(".hidden"), "not a kubeconfig").unwrap();
        let mut d = KubeconfigDir::read(dir.path().into(), Connections::new())
            .await
            .unwrap();
        assert_eq!(d.ids(), ["alpha"]);
        let alpha = d.clusters.current()["alpha"].clone();

        // A new file joins; an unchanged one keeps its connection.
        std::fs::write(
            dir.path().join("beta"),
            kubeconfig("https://b.example:6443"),
        )
        .unwrap();
        d.reload().await;
        assert_eq!(d.ids(), ["alpha", "beta"]);
        assert!(Arc::ptr_eq(&alpha, &d.clusters.current()["alpha"]));

        // A broken file keeps the connections last read.
        std::fs::write(dir.path().join("beta"), "clusters: [").unwrap();
        d.reload().await;
        assert_eq!(d.ids(), ["alpha", "beta"]);

        // A removed file's cluster goes.
        std::fs::remove_file(dir.path().join("beta")).unwrap();
        d.reload().await;
        assert_eq!(d.ids(), ["alpha"]);
    }

    #[tokio::test]
    async fn a_file_not_named_by_a_cluster_id_stops_the_start_naming_it() {
        let dir = folder_with("prod-eu.yaml", "https://a.example");
        let err = KubeconfigDir::read(dir.path().into(), Connections::new())
            .await
            .err()
            .expect("a bad name is refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("prod-eu.yaml is not named by a cluster id"),
            "{text}"
        );
        let missing = KubeconfigDir::read(dir.path().join("nope"), Connections::new()).await;
        assert!(format!("{:#}", missing.err().unwrap()).contains("--cluster-kubeconfigs"));
    }
}
