//! The health filter as people type it, read in one place for every surface: `cw search
//! --health`, `cw ask --health`, the search API's `health` and the MCP tools' `health`.
//! A word names one status (`failed`, `in-progress`) or several (`unhealthy`).

use serde::{Deserialize, Serialize};

use super::HealthStatus;

/// What a health filter accepts, as every surface's error and help says it.
pub const HEALTH_WORDS: &str = "Current, InProgress, Failed, Terminating or Unknown (any case, \
with or without a dash: failed, in-progress), or unhealthy (Failed or InProgress), healthy \
(Current), failing (Failed), progressing (InProgress)";

/// The statuses of `unhealthy`: what needs a look, broken or not there yet.
const UNHEALTHY: [HealthStatus; 2] = [HealthStatus::Failed, HealthStatus::InProgress];

/// A health filter: one status, or `unhealthy` (Failed or InProgress). Written on the wire
/// as the status (`Failed`) or the word `unhealthy`; read from any word of
/// [`HEALTH_WORDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthFilter {
    /// Exactly this status (`failed`, `failing`, `healthy` = Current, `progressing` =
    /// InProgress).
    Is(HealthStatus),
    /// Failed or InProgress.
    Unhealthy,
}

impl HealthFilter {
    /// The statuses the filter admits.
    pub fn statuses(&self) -> &[HealthStatus] {
        match self {
            HealthFilter::Is(status) => std::slice::from_ref(status),
            HealthFilter::Unhealthy => &UNHEALTHY,
        }
    }

    /// True when an object of `status` passes the filter.
    pub fn admits(&self, status: HealthStatus) -> bool {
        self.statuses().contains(&status)
    }

    /// The wire form: `Failed`, `InProgress`, ..., or `unhealthy`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthFilter::Is(status) => status.as_str(),
            HealthFilter::Unhealthy => "unhealthy",
        }
    }

    /// Reads a word as people type it (see [`HEALTH_WORDS`]); blank is no filter.
    pub fn parse_optional(word: Option<&str>) -> Result<Option<HealthFilter>, String> {
        match word.map(str::trim).filter(|w| !w.is_empty()) {
            None => Ok(None),
            Some(w) => w.parse().map(Some),
        }
    }
}

impl From<HealthStatus> for HealthFilter {
    fn from(status: HealthStatus) -> Self {
        HealthFilter::Is(status)
    }
}

impl std::str::FromStr for HealthFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim();
        if let Some(status) = HealthStatus::parse_loose(word) {
            return Ok(HealthFilter::Is(status));
        }
        match word.to_lowercase().as_str() {
            "unhealthy" => Ok(HealthFilter::Unhealthy),
            "healthy" => Ok(HealthFilter::Is(HealthStatus::Current)),
            "failing" => Ok(HealthFilter::Is(HealthStatus::Failed)),
            "progressing" => Ok(HealthFilter::Is(HealthStatus::InProgress)),
            _ => Err(format!(
                "health {} is not supported: use {HEALTH_WORDS}",
                crate::untrusted::echo(word)
            )),
        }
    }
}

impl std::fmt::Display for HealthFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HealthFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HealthFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    fn statuses(word: &str) -> Vec<HealthStatus> {
        word.parse::<HealthFilter>()
            .unwrap_or_else(|e| panic!("{e}"))
            .statuses()
            .to_vec()
    }

    #[test]
    fn the_refusal_of_a_health_word_is_one_line_with_single_spaces_and_a_short_echo() {
        for word in ["sick", "  bad  ", &"x".repeat(5_000)] {
            let err = word.parse::<HealthFilter>().unwrap_err();
            assert!(!err.contains("  ") && !err.contains('\n'), "{err:?}");
            assert!(err.len() < 500, "{err}");
        }
    }

    #[test]
    fn the_five_statuses_read_in_any_case_with_or_without_a_dash() {
        assert_eq!(statuses("Failed"), [Failed]);
        assert_eq!(statuses("failed"), [Failed]);
        assert_eq!(statuses("in-progress"), [InProgress]);
        assert_eq!(statuses("InProgress"), [InProgress]);
        assert_eq!(statuses("current"), [Current]);
        assert_eq!(statuses("TERMINATING"), [Terminating]);
        assert_eq!(statuses(" unknown "), [Unknown]);
    }

    #[test]
    fn the_words_people_type_name_their_statuses() {
        assert_eq!(statuses("unhealthy"), [Failed, InProgress]);
        assert_eq!(statuses("Unhealthy"), [Failed, InProgress]);
        assert_eq!(statuses("healthy"), [Current]);
        assert_eq!(statuses("failing"), [Failed]);
        assert_eq!(statuses("progressing"), [InProgress]);
        let unhealthy: HealthFilter = "unhealthy".parse().unwrap();
        assert!(unhealthy.admits(Failed) && unhealthy.admits(InProgress));
        assert!(!unhealthy.admits(Current) && !unhealthy.admits(Terminating));
    }

    #[test]
    fn an_unknown_word_is_refused_with_every_accepted_word() {
        let err = "broken".parse::<HealthFilter>().unwrap_err();
        for word in [
            "\"broken\"",
            "Current",
            "InProgress",
            "Failed",
            "Terminating",
            "Unknown",
            "unhealthy",
            "healthy",
            "failing",
            "progressing",
        ] {
            assert!(err.contains(word), "{word} missing from: {err}");
        }
        assert_eq!(HealthFilter::parse_optional(Some("  ")), Ok(None));
        assert!(HealthFilter::parse_optional(Some("broken")).is_err());
    }

    #[test]
    fn the_wire_form_is_the_status_or_the_word_and_reads_back() {
        let failing: HealthFilter = "failing".parse().unwrap();
        assert_eq!(serde_json::to_value(failing).unwrap(), "Failed");
        let unhealthy: HealthFilter = serde_json::from_str("\"unhealthy\"").unwrap();
        assert_eq!(serde_json::to_value(unhealthy).unwrap(), "unhealthy");
        let err = serde_json::from_str::<HealthFilter>("\"sick\"").unwrap_err();
        assert!(err.to_string().contains("unhealthy"), "{err}");
    }
}
