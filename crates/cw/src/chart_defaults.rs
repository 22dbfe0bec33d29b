//! The chart's defaults are the code's: every value of charts/cw/values.yaml that names its
//! environment variable (`# env: NAME`) and sets it is compared with the default of the
//! flag that reads that variable, in any `cw` command. deploy/manifests is rendered from the
//! chart (scripts/test-chart checks it is current), so it agrees too.

use std::collections::BTreeMap;

use clap::CommandFactory;

use crate::Cli;

/// Where the chart chooses otherwise on purpose, and why.
const CHART_CHOOSES: &[(&str, &str)] = &[
    (
        "CW_HOST",
        "in a Pod the server listens on every interface; on a laptop loopback only",
    ),
    (
        "LOG_JSON",
        "in a cluster logs go to a collector that reads JSON lines",
    ),
    (
        "CW_EMBEDDING_PROVIDER",
        "the default image has no local model; the chart embeds with Voyage AI",
    ),
    (
        "CW_SHUTDOWN_DRAIN_SECS",
        "behind a Service a stopping replica must turn unready before its port closes; \
         on a laptop cw serve stops at once",
    ),
];

/// The default of every flag that reads an environment variable, by variable, across all
/// commands (a variable read by several commands must have one default).
fn code_defaults() -> BTreeMap<String, String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeMap<String, (String, String)>) {
        for arg in cmd.get_arguments() {
            let (Some(env), [default]) = (arg.get_env(), arg.get_default_values()) else {
                continue;
            };
            let env = env.to_string_lossy().to_string();
            let default = default.to_string_lossy().to_string();
            let here = cmd.get_name().to_string();
            if let Some((seen, there)) = out.get(&env) {
                assert_eq!(
                    seen, &default,
                    "{env} defaults to {seen:?} in `{there}` but to {default:?} in `{here}`"
                );
            }
            out.insert(env, (default, here));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&Cli::command(), &mut out);
    out.into_iter().map(|(env, (d, _))| (env, d)).collect()
}

/// `(line, variable, value)` of every value in values.yaml that sets its variable: after a
/// `# env: NAME` comment (or `# env: NAME = "…{value}…"`), a `key: scalar` line. Values the
/// chart leaves to cw (`""`, `null`, `[]`) and Secret references are left out.
fn chart_values(yaml: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut env: Option<(String, Option<String>)> = None;
    for (i, line) in yaml.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(rest) = comment.trim().strip_prefix("env:") {
                let mut words = rest.trim().splitn(2, ' ');
                let name = words.next().unwrap_or_default().to_string();
                let rest = words.next().unwrap_or_default().trim();
                env = if rest.starts_with("from ") {
                    None // a Secret reference, not a value
                } else {
                    let template = rest
                        .strip_prefix('=')
                        .map(|t| t.trim().trim_matches('"').to_string());
                    Some((name, template))
                };
            }
            continue;
        }
        let Some((name, template)) = env.take() else {
            continue;
        };
        let Some((_, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        if matches!(value, "" | "null" | "[]" | "{}") {
            continue;
        }
        let value = match template {
            // A value that becomes a path or a mount, not the variable's value itself.
            Some(t) if !t.contains("{value}") => continue,
            Some(t) => t.replace("{value}", value),
            None => value.to_string(),
        };
        out.push((i + 1, name, value));
    }
    out
}

#[test]
fn the_charts_defaults_are_the_codes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/cw/values.yaml");
    let yaml = std::fs::read_to_string(path).expect("charts/cw/values.yaml");
    let chart = chart_values(&yaml);
    assert!(
        chart.len() > 20,
        "too few values read from {path}: {chart:?}"
    );
    let code = code_defaults();
    let chosen: BTreeMap<&str, &str> = CHART_CHOOSES.iter().copied().collect();
    let mut wrong = Vec::new();
    for (line, env, value) in &chart {
        let Some(default) = code.get(env) else {
            continue; // no default in the code: the chart's value is the only one
        };
        match (chosen.contains_key(env.as_str()), value == default) {
            (false, false) => wrong.push(format!(
                "values.yaml:{line} sets {env}={value:?}, the code's default is {default:?}"
            )),
            (true, true) => wrong.push(format!(
                "values.yaml:{line} sets {env} to the code's default {default:?}: take it out \
                 of CHART_CHOOSES"
            )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn chart_values_are_read_with_their_templates_and_without_secret_references() {
    let yaml = "\
    # -- Port.
    # env: API_BIND_ADDRESS = \":{value}\"
    apiPort: 8082
    # env: CW_INGEST_TIMEOUT_SECS
    ingestTimeoutSecs: 120
    # env: VOYAGE_API_KEY from secretKeyRef.name
    name: voyage
    # env: CHROMA_URL
    chromaUrl: \"\"
    # env: CW_INGEST_TOKENS_FILE = \"/etc/cw/tokens/tokens\"
    tokensFileSecret: tokens
";
    assert_eq!(
        chart_values(yaml),
        vec![
            (3, "API_BIND_ADDRESS".to_string(), ":8082".to_string()),
            (5, "CW_INGEST_TIMEOUT_SECS".to_string(), "120".to_string()),
        ]
    );
}
