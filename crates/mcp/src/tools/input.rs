//! Inputs several tools share, read leniently where a model may slip: enumerations are
//! checked here, so a wrong value is a tool error that says what to send, not a protocol
//! failure.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[allow(dead_code)] // read only for its schema: values are checked in `parse_health`
pub(super) enum HealthSchema {
    Current,
    InProgress,
    Failed,
    Terminating,
    Unknown,
    #[serde(rename = "unhealthy")]
    Unhealthy,
    #[serde(rename = "healthy")]
    Healthy,
    #[serde(rename = "failing")]
    Failing,
    #[serde(rename = "progressing")]
    Progressing,
}

/// The health filter as a model may spell it (`failed`, `in-progress`, `unhealthy`), read
/// by sync-model's one reading of health words; the error names every accepted word.
pub fn parse_health(health: Option<&str>) -> Result<Option<sync_model::HealthFilter>, String> {
    sync_model::HealthFilter::parse_optional(health)
}

/// `value` within 1..=max, `default` when absent; an error that names the range otherwise,
/// and `beyond`: what to do instead of asking for more (each tool says what it offers: only
/// search_resources has a cursor). The tools' schemas declare the same range.
pub(super) fn bounded(
    value: Option<u32>,
    default: usize,
    max: usize,
    name: &str,
    beyond: &str,
) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(0) => Err(format!("{name} must be 1 to {max} (default {default})")),
        Some(n) if n as usize > max => Err(format!("{name} must be at most {max}: {beyond}")),
        Some(n) => Ok(n as usize),
    }
}

pub(super) fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "label filter {} must be key=value, e.g. \"app.kubernetes.io/name=postgres\"",
                echo(l)
            )),
        })
        .collect()
}

/// `""`, `core` and `v1` name the core group; anything else is the group itself.
pub fn normalise_group(group: Option<&str>) -> Option<String> {
    let g = group?.trim();
    match g {
        "" => None,
        "core" | "v1" => Some(String::new()),
        other => Some(other.to_string()),
    }
}

/// A caller's input as an error repeats it: quoted, cleaned and cut with its size, so that a
/// 100 KB input is never echoed in full.
pub(super) fn echo(s: &str) -> String {
    crate::untrusted::echo(s)
}

/// `None` for an absent or blank text.
pub fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_filter_reads_as_a_model_may_spell_it_and_names_the_choices() {
        use sync_model::{HealthFilter, HealthStatus};
        assert_eq!(
            parse_health(Some("failed")),
            Ok(Some(HealthFilter::Is(HealthStatus::Failed)))
        );
        assert_eq!(
            parse_health(Some("unhealthy")),
            Ok(Some(HealthFilter::Unhealthy))
        );
        assert_eq!(parse_health(Some(" ")), Ok(None));
        let err = parse_health(Some("broken")).unwrap_err();
        assert!(err.contains("InProgress"), "{err}");
        assert!(err.contains("unhealthy"), "{err}");
    }

    #[test]
    fn a_long_input_is_echoed_cut_with_its_size() {
        assert_eq!(echo("db"), "\"db\"");
        let long = "é".repeat(50_000);
        let shown = echo(&long);
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains("100000 bytes"), "{shown}");
    }

    #[test]
    fn a_limit_out_of_range_names_the_range_and_what_this_tool_offers_instead() {
        assert_eq!(bounded(None, 10, 50, "limit", "narrow it"), Ok(10));
        assert_eq!(bounded(Some(50), 10, 50, "limit", "narrow it"), Ok(50));
        assert_eq!(
            bounded(Some(0), 10, 50, "limit", "narrow it"),
            Err("limit must be 1 to 50 (default 10)".into())
        );
        assert_eq!(
            bounded(Some(51), 10, 50, "limit", "narrow it"),
            Err("limit must be at most 50: narrow it".into())
        );
    }

    #[test]
    fn a_long_input_is_not_echoed_in_full() {
        let huge = "x".repeat(100_000);
        let err = parse_labels(&[huge]).unwrap_err();
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("100000 bytes"), "{err}");
        let err = parse_health(Some(&"y".repeat(100_000))).unwrap_err();
        assert!(err.len() < 600, "{err}");
    }

    #[test]
    fn the_core_group_has_several_spellings() {
        assert_eq!(normalise_group(Some("core")), Some(String::new()));
        assert_eq!(normalise_group(Some("")), None);
        assert_eq!(normalise_group(Some("apps")), Some("apps".into()));
    }
}
