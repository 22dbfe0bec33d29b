//! A simulator with its kubeconfig in a temporary folder, driven by the real `kubectl` (1.32)
//! and by kube-rs clients: shared by the kubectl tests and the identity tests. Fails, never
//! skips, when kubectl is missing.
#![allow(dead_code)]

use std::path::PathBuf;

use kube_sim::{SimConfig, SimHandle, SimServer};
use tokio::process::Command;

pub struct Cluster {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(config: SimConfig) -> Self {
        let ok = std::process::Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "kubectl is not installed: these tests drive the real kubectl 1.32 (install it, e.g. from https://dl.k8s.io or apt.kubernetes.io)");
        let sim = SimServer::start(config).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sim.write_kubeconfig(dir.path().join("kubeconfig")).unwrap();
        Self { sim, dir }
    }

    /// kubectl with the simulator's kubeconfig, and its cache and home in the folder.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        c
    }

    /// kubectl's exit status, stdout and stderr (trimmed).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd(args).output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    /// The stdout of a kubectl command that must succeed.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    /// The stderr of a kubectl command that must fail.
    pub async fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(!ok, "kubectl {args:?} succeeded:\n{out}");
        err
    }

    /// Writes a file into the folder.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn client_with_token(&self, token: &str) -> kube::Client {
        kube::Client::try_from(self.sim.kube_config_with_token(token)).unwrap()
    }

    /// A kube-rs client impersonating `user` of `groups`, authenticated by `token` (else as
    /// the simulator's kubeconfig is).
    pub fn impersonating(&self, user: &str, groups: &[&str], token: Option<&str>) -> kube::Client {
        let mut c = self.sim.kube_config();
        if let Some(t) = token {
            c.auth_info.token = Some(t.into());
        }
        c.auth_info.impersonate = Some(user.to_string());
        c.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        kube::Client::try_from(c).unwrap()
    }
}
