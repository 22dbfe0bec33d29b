//! Label and field selectors as list and watch requests send them
//! (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors).

use crate::error::{Result, SimError};

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed `labelSelector`; all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn check_key(key: &str, whole: &str) -> Result<()> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(SimError::BadRequest(format!(
            "unable to parse requirement: invalid label key in selector {whole:?}"
        )));
    }
    Ok(())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self> {
        let mut reqs = Vec::new();
        let bad =
            |m: &str| SimError::BadRequest(format!("unable to parse requirement: {m} in {s:?}"));
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            if let Some(key) = part.strip_prefix('!') {
                check_key(key.trim(), s)?;
                reqs.push((key.trim().to_string(), Op::NotExists));
                continue;
            }
            let set_op = [" notin ", " in "]
                .into_iter()
                .find_map(|op| part.find(op).map(|i| (op, i)));
            if let Some((op, i)) = set_op {
                let key = part[..i].trim();
                check_key(key, s)?;
                let rest = part[i + op.len()..].trim();
                let inner = rest
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad("expected a parenthesised value set"))?;
                let values = inner
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                let op = if op.trim() == "in" {
                    Op::In(values)
                } else {
                    Op::NotIn(values)
                };
                reqs.push((key.to_string(), op));
                continue;
            }
            if let Some((k, v)) = part.split_once("!=") {
                check_key(k.trim(), s)?;
                reqs.push((k.trim().into(), Op::NotEq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once("==") {
                check_key(k.trim(), s)?;
                reqs.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else if let Some((k, v)) = part.split_once('=') {
                check_key(k.trim(), s)?;
                reqs.push((k.trim().into(), Op::Eq(v.trim().into())));
            } else if part.contains(['<', '>', '(', ')']) {
                return Err(bad("unsupported operator"));
            } else {
                check_key(part, s)?;
                reqs.push((part.to_string(), Op::Exists));
            }
        }
        Ok(Self { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether labels (sorted or not) satisfy every requirement.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let get = |k: &str| {
            labels
                .iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| v.as_str())
        };
        self.reqs.iter().all(|(k, op)| match op {
            Op::Eq(v) => get(k) == Some(v.as_str()),
            Op::NotEq(v) => get(k) != Some(v.as_str()),
            Op::In(vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::NotIn(vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Op::Exists => get(k).is_some(),
            Op::NotExists => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`: `metadata.name` and `metadata.namespace` with `=`, `==`, `!=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(bool, String, bool, String)>, // (is_name, _, equal, value)
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SimError::BadRequest(format!(
                    "invalid field selector: {part:?}: expected an operator"
                )));
            };
            let is_name = match field.trim() {
                "metadata.name" => true,
                "metadata.namespace" => false,
                other => {
                    return Err(SimError::BadRequest(format!(
                        "field label not supported: {other}"
                    )))
                }
            };
            reqs.push((is_name, String::new(), equal, value.trim().to_string()));
        }
        Ok(Self { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.reqs.iter().all(|(is_name, _, equal, value)| {
            let actual = if *is_name { name } else { namespace };
            (actual == value) == *equal
        })
    }

    /// The single name an `metadata.name=x` selector pins, for a direct lookup.
    pub fn exact_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(is_name, _, equal, _)| *is_name && *equal)
            .map(|(_, _, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_label_operator_selects_what_kubernetes_selects() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier in (back)", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn unsupported_field_selectors_are_bad_requests() {
        assert_eq!(
            FieldSelector::parse("spec.nodeName=x").unwrap_err().code(),
            400
        );
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("default", "a"));
        assert!(!f.matches("kube-system", "a"));
    }
}
