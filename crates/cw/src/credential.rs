//! The caller's credential for a cw server, as `cw search`, `cw ask`, `cw clusters` and
//! `cw mcp --server` send it. The first that is given wins:
//!
//! 1. `--token` / `CW_TOKEN`: your own bearer token (an OIDC ID token, a ServiceAccount
//!    token, or a user's token of the server's tokens file);
//! 2. `--kube-credentials` / `CW_KUBE_CREDENTIALS=1`: the current kubeconfig context's user,
//!    as kubectl would send it: its `token`, its `tokenFile` (read again for every request,
//!    as projected tokens rotate) or its `exec` credential plugin
//!    (client.authentication.k8s.io ExecCredential, run again when its token expires);
//! 3. `--ingest-token` / `CW_INGEST_TOKEN`: an operator's or watcher's token (the server's
//!    own), as before.
//!
//! Kubernetes credentials are sent only when asked for: a kubeconfig's token is meant for
//! its API server, and cw never hands it to a server the user did not choose to give it to.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use kube::config::{AuthInfo, ExecConfig, Kubeconfig, NamedCluster};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// How long before its expiry an exec plugin's token is fetched anew.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

/// What a client sends as its bearer token.
#[derive(Clone, Debug, Default)]
pub enum Credential {
    #[default]
    None,
    Token(String),
    Kube(Arc<KubeUser>),
}

impl Credential {
    /// A token, `None` when blank.
    pub fn token(token: Option<&str>) -> Self {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Credential::Token(t.to_string()),
            None => Credential::None,
        }
    }

    /// The bearer token to send now, if any.
    pub async fn bearer(&self) -> anyhow::Result<Option<String>> {
        match self {
            Credential::None => Ok(None),
            Credential::Token(t) => Ok(Some(t.clone())),
            Credential::Kube(user) => user.bearer().await.map(Some),
        }
    }
}

/// Where the kubeconfig user's token comes from.
#[derive(Debug)]
enum Source {
    Token(String),
    TokenFile(PathBuf),
    Exec {
        exec: Box<ExecConfig>,
        cluster: Option<Value>,
    },
}

/// The current kubeconfig context's user.
#[derive(Debug)]
pub struct KubeUser {
    /// The kubeconfig user's name, for messages.
    name: String,
    source: Source,
    /// The exec plugin's last token and its expiry.
    cached: tokio::sync::Mutex<Option<(String, Option<chrono::DateTime<chrono::Utc>>)>>,
}

/// What the first `what` (context, user) of a kubeconfig list named `name` holds; `parts`
/// gives an entry's name and content.
fn named<'a, E, T>(
    entries: &'a [E],
    what: &str,
    name: &str,
    parts: impl Fn(&'a E) -> (&'a String, Option<&'a T>),
) -> anyhow::Result<&'a T> {
    entries
        .iter()
        .map(parts)
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, content)| content)
        .with_context(|| format!("the kubeconfig has no {what} {name:?}"))
}

impl KubeUser {
    /// The user of `kubeconfig`'s current context.
    pub fn current(kubeconfig: &Kubeconfig) -> anyhow::Result<Self> {
        let context_name = kubeconfig
            .current_context
            .as_deref()
            .context("the kubeconfig has no current context (kubectl config use-context NAME)")?;
        let context = named(&kubeconfig.contexts, "context", context_name, |c| {
            (&c.name, c.context.as_ref())
        })?;
        let user_name = context
            .user
            .as_deref()
            .with_context(|| format!("the context {context_name:?} names no user"))?;
        let auth = named(&kubeconfig.auth_infos, "user", user_name, |a| {
            (&a.name, a.auth_info.as_ref())
        })?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster);
        Ok(KubeUser {
            name: user_name.to_string(),
            source: source_of(user_name, auth, cluster)?,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// The token to send now.
    pub async fn bearer(&self) -> anyhow::Result<String> {
        match &self.source {
            Source::Token(t) => Ok(t.clone()),
            Source::TokenFile(path) => {
                let token = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "reading the tokenFile {} of the kubeconfig user {:?}",
                        path.display(),
                        self.name
                    )
                })?;
                Ok(token.trim().to_string())
            }
            Source::Exec { exec, cluster } => {
                let mut cached = self.cached.lock().await;
                let now = chrono::Utc::now();
                if let Some((token, expiry)) = cached.as_ref() {
                    if expiry.is_none_or(|e| e - EXPIRY_MARGIN > now) {
                        return Ok(token.clone());
                    }
                }
                let (token, expiry) = run_exec(&self.name, exec, cluster.as_ref()).await?;
                *cached = Some((token.clone(), expiry));
                Ok(token)
            }
        }
    }
}

fn source_of(
    user: &str,
    auth: &AuthInfo,
    cluster: Option<&NamedCluster>,
) -> anyhow::Result<Source> {
    if let Some(token) = &auth.token {
        return Ok(Source::Token(token.expose_secret().trim().to_string()));
    }
    if let Some(file) = &auth.token_file {
        return Ok(Source::TokenFile(PathBuf::from(file)));
    }
    if let Some(exec) = &auth.exec {
        // kubectl's provideClusterInfo: the cluster's server and CA, in ExecCredential's
        // spec.cluster.
        let cluster = exec
            .provide_cluster_info
            .then(|| cluster.and_then(|c| c.cluster.as_ref()))
            .flatten()
            .map(|c| {
                json!({
                    "server": c.server,
                    "certificate-authority-data": c.certificate_authority_data,
                    "insecure-skip-tls-verify": c.insecure_skip_tls_verify.unwrap_or(false),
                    "proxy-url": c.proxy_url,
                    "tls-server-name": c.tls_server_name,
                })
            });
        return Ok(Source::Exec {
            exec: Box::new(exec.clone()),
            cluster,
        });
    }
    bail!(
        "the kubeconfig user {user:?} has no token, tokenFile or exec credential plugin: cw \
         servers take bearer tokens (client certificates and basic auth cannot be sent); pass \
         --token instead"
    )
}

/// Runs an exec credential plugin as kubectl does: its command and args, this process's
/// environment with its `env` added, `KUBERNETES_EXEC_INFO` set, no stdin (cw mcp's stdin is
/// the MCP session), its stderr shown; reads `status.token` and `status.expirationTimestamp`
/// from the ExecCredential it prints.
async fn run_exec(
    user: &str,
    exec: &ExecConfig,
    cluster: Option<&Value>,
) -> anyhow::Result<(String, Option<chrono::DateTime<chrono::Utc>>)> {
    let command = exec.command.as_deref().with_context(|| {
        format!("the exec plugin of the kubeconfig user {user:?} names no command")
    })?;
    let api_version = exec
        .api_version
        .clone()
        .unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let mut spec = json!({"interactive": false});
    if let Some(cluster) = cluster {
        spec["cluster"] = cluster.clone();
    }
    let info = json!({"apiVersion": api_version, "kind": "ExecCredential", "spec": spec});
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(exec.args.iter().flatten())
        .env("KUBERNETES_EXEC_INFO", info.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    for pair in exec.env.iter().flatten() {
        let env: &HashMap<String, String> = pair;
        if let (Some(name), Some(value)) = (env.get("name"), env.get("value")) {
            cmd.env(name, value);
        }
    }
    let output = cmd.output().await.with_context(|| {
        let hint = exec.install_hint.as_deref().unwrap_or("");
        format!("running the exec credential plugin {command:?} of the kubeconfig user {user:?}. {hint}")
    })?;
    if !output.status.success() {
        bail!(
            "the exec credential plugin {command:?} of the kubeconfig user {user:?} failed ({})",
            output.status
        );
    }
    let credential: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!("the exec credential plugin {command:?} printed no ExecCredential JSON")
    })?;
    let status = credential.get("status");
    let Some(token) = status
        .and_then(|s| s.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        bail!(
            "the exec credential plugin {command:?} gave no status.token (a client certificate \
             cannot be sent to a cw server): pass --token instead"
        );
    };
    let expiry = status
        .and_then(|s| s.get("expirationTimestamp"))
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    Ok((token.to_string(), expiry))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kubeconfig whose current user is `user` (YAML of an AuthInfo).
    fn kubeconfig(user: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n\
             clusters: [{{name: k, cluster: {{server: 'https://k.example:6443'}}}}]\n\
             users: [{{name: u, user: {user}}}]\n"
        ))
        .expect("a kubeconfig")
    }

    #[tokio::test]
    async fn a_kubeconfig_token_or_token_file_is_the_bearer() {
        let user = KubeUser::current(&kubeconfig("{token: abc}")).unwrap();
        assert_eq!(user.bearer().await.unwrap(), "abc");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let user = KubeUser::current(&kubeconfig(&format!("{{tokenFile: '{}'}}", file.display())))
            .unwrap();
        assert_eq!(user.bearer().await.unwrap(), "first");
        std::fs::write(&file, "rotated\n").unwrap();
        assert_eq!(user.bearer().await.unwrap(), "rotated", "read again");

        let err = KubeUser::current(&kubeconfig("{username: a, password: b}")).unwrap_err();
        assert!(err.to_string().contains("--token"), "{err}");
    }

    /// A fake exec credential plugin: writes what it was given (args, env, exec info) to
    /// `seen` and prints an ExecCredential with `token` expiring at `expiry`.
    fn fake_plugin(dir: &std::path::Path, token: &str, expiry: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let seen = dir.join("seen");
        let calls = dir.join("calls");
        let path = dir.join("plugin.sh");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n\
                 echo call >> '{calls}'\n\
                 printf '%s\\n%s\\n%s\\n' \"$*\" \"$FAKE_ENV\" \"$KUBERNETES_EXEC_INFO\" > '{seen}'\n\
                 cat <<JSON\n\
                 {{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\
                 \"status\":{{\"token\":\"{token}\",\"expirationTimestamp\":\"{expiry}\"}}}}\n\
                 JSON\n",
                calls = calls.display(),
                seen = seen.display(),
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn exec_user(plugin: &std::path::Path) -> String {
        format!(
            "{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: '{}', \
             args: [get-token, --cluster, k], env: [{{name: FAKE_ENV, value: from-kubeconfig}}], \
             provideClusterInfo: true, interactiveMode: Never}}}}",
            plugin.display()
        )
    }

    #[tokio::test]
    async fn an_exec_plugin_is_run_as_kubectl_runs_it_and_its_token_kept_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let plugin = fake_plugin(dir.path(), "exec-token", &later);
        let user = KubeUser::current(&kubeconfig(&exec_user(&plugin))).unwrap();
        assert_eq!(user.bearer().await.unwrap(), "exec-token");
        let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
        let mut lines = seen.lines();
        assert_eq!(lines.next(), Some("get-token --cluster k"));
        assert_eq!(lines.next(), Some("from-kubeconfig"));
        let info: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(info["kind"], "ExecCredential");
        assert_eq!(info["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(info["spec"]["interactive"], false);
        assert_eq!(info["spec"]["cluster"]["server"], "https://k.example:6443");
        // Not expired: not run again.
        assert_eq!(user.bearer().await.unwrap(), "exec-token");
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(calls.lines().count(), 1);
    }

    #[tokio::test]
    async fn an_expired_exec_token_is_fetched_again_and_a_failing_plugin_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
        let plugin = fake_plugin(dir.path(), "short-lived", &past);
        let user = KubeUser::current(&kubeconfig(&exec_user(&plugin))).unwrap();
        user.bearer().await.unwrap();
        user.bearer().await.unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(calls.lines().count(), 2, "run again once expired");

        let failing = dir.path().join("fail.sh");
        std::fs::write(&failing, "#!/bin/sh\nexit 3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let user = KubeUser::current(&kubeconfig(&exec_user(&failing))).unwrap();
        let err = user.bearer().await.unwrap_err().to_string();
        assert!(err.contains("fail.sh") && err.contains("failed"), "{err}");
    }
}
