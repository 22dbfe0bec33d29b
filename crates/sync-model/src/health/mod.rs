//! An object's coarse health, one vocabulary everywhere: read from its status by the
//! kstatus rules ([`assess`]), stored by the watcher, said by `get_resource`, and filtered
//! on by every search surface ([`HealthFilter`]). A value a search filters on and a one-line
//! reason a person reads. Metadata, not document text: a change of health alone is never
//! embedded again.

mod filter;
mod kstatus;

pub use filter::{HealthFilter, HEALTH_WORDS};
pub use kstatus::{assess, is_health_kind, MetaFacts};

use serde::{Deserialize, Serialize};

/// The longest reason kept, in bytes: one line, not a condition message's paragraphs.
pub const MAX_HEALTH_REASON_BYTES: usize = 200;

/// The coarse health of an object, as kstatus computes it.
/// Read loosely (`failed`, `in-progress`), written as below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HealthStatus {
    /// Reconciled: what the spec asks for is what runs.
    Current,
    /// On its way: a rollout, a pending Pod, a Job still running.
    InProgress,
    /// Will not get there without help: CrashLoopBackOff, a failed Job, a stalled object.
    Failed,
    /// Being deleted (metadata.deletionTimestamp is set).
    Terminating,
    /// Its status says nothing conclusive.
    Unknown,
}

impl HealthStatus {
    pub const ALL: [HealthStatus; 5] = [
        HealthStatus::Current,
        HealthStatus::InProgress,
        HealthStatus::Failed,
        HealthStatus::Terminating,
        HealthStatus::Unknown,
    ];

    /// The wire and metadata form: `Current`, `InProgress`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Current => "Current",
            HealthStatus::InProgress => "InProgress",
            HealthStatus::Failed => "Failed",
            HealthStatus::Terminating => "Terminating",
            HealthStatus::Unknown => "Unknown",
        }
    }

    /// Reads a status as a person types it: any case, with or without dashes
    /// (`failed`, `in-progress`, `InProgress`).
    pub fn parse_loose(s: &str) -> Option<HealthStatus> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        HealthStatus::ALL
            .into_iter()
            .find(|h| h.as_str().to_lowercase() == norm)
    }
}

impl<'de> Deserialize<'de> for HealthStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HealthStatus::parse_loose(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown health {s:?}; one of Current, InProgress, Failed, Terminating, Unknown"
            ))
        })
    }
}

impl std::str::FromStr for HealthStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HealthStatus::parse_loose(s).ok_or_else(|| {
            format!(
                "unknown health {s:?}; one of current, in-progress, failed, terminating, unknown"
            )
        })
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health with its reason: `{"status": "Failed", "reason": "CrashLoopBackOff: container db"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: HealthStatus,
    /// One line; empty when the status says it all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `Failed: CrashLoopBackOff: container db`, or just the status when there is no reason.
impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.reason)
        }
    }
}

impl Health {
    /// A health whose reason is cut to one line of at most [`MAX_HEALTH_REASON_BYTES`].
    pub fn new(status: HealthStatus, reason: impl Into<String>) -> Self {
        Health {
            status,
            reason: one_line(&reason.into()),
        }
    }
}

/// The first line of `s`, trimmed and cut (at a character boundary) to the reason limit.
fn one_line(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.len() <= MAX_HEALTH_REASON_BYTES {
        return line.to_string();
    }
    let mut end = MAX_HEALTH_REASON_BYTES - 3;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_people_type_them() {
        assert_eq!(
            HealthStatus::parse_loose("failed"),
            Some(HealthStatus::Failed)
        );
        assert_eq!(
            HealthStatus::parse_loose("in-progress"),
            Some(HealthStatus::InProgress)
        );
        assert_eq!(
            HealthStatus::parse_loose("InProgress"),
            Some(HealthStatus::InProgress)
        );
        assert_eq!(HealthStatus::parse_loose("broken"), None);
    }

    #[test]
    fn a_reason_is_one_short_line() {
        let h = Health::new(HealthStatus::Failed, "\n  first line \nsecond");
        assert_eq!(h.reason, "first line");
        let long = Health::new(HealthStatus::Failed, "é".repeat(300));
        assert!(long.reason.len() <= MAX_HEALTH_REASON_BYTES);
        assert!(long.reason.ends_with("..."));
    }

    #[test]
    fn the_wire_form_omits_an_empty_reason() {
        let h = Health::new(HealthStatus::Current, "");
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"status":"Current"}"#
        );
    }
}
