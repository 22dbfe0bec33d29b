//! What a question's words ask for, before anything is searched: the words that could be
//! names, kinds, namespaces, label values or software names, and the categories and kinds of
//! store of well-known software it asks about ("databases", "monitoring", "logins",
//! "key-value stores"); then which of them a stored object matches exactly. What a category
//! covers is the software catalogue's (`sync_model::software`).

use std::collections::HashSet;

use sync_model::software::{Category, DataModel, Software};

use super::meta_str;
use crate::document::SOFTWARE_KEY;
use crate::store::{MetaValue, Metadata};

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "all", "any", "do", "does", "find", "for", "have", "in", "is", "it",
    "list", "me", "my", "of", "on", "or", "running", "show", "that", "the", "there", "this", "to",
    "we", "what", "which", "who", "with",
];

/// Nouns that make the category word before them a modifier: "queue length" asks about
/// what measures a queue, "database migrations" about migrations, not about queues or
/// databases themselves.
const ATTRIBUTE_NOUNS: &[&str] = &[
    "length",
    "size",
    "depth",
    "lag",
    "level",
    "latency",
    "rate",
    "ratio",
    "hit",
    "usage",
    "count",
    "migration",
    "schema",
    "backup",
    "client",
    "credential",
    "password",
    "connection",
    "exporter",
    "operator",
    "admin",
    "administrator",
    "console",
    "ui",
    "version",
    "port",
    "config",
    "configuration",
    "setting",
    "driver",
    "dump",
    "snapshot",
    "restore",
    "replica",
    "retention",
    "quota",
];

/// Words that ask about health: "are any databases unhealthy?", "what is failing?".
const HEALTH_WORDS: &[&str] = &[
    "unhealthy",
    "healthy",
    "health",
    "failing",
    "failed",
    "failure",
    "failures",
    "broken",
    "crashing",
    "crashed",
    "crashloop",
    "crashloopbackoff",
    "degraded",
    "erroring",
];

/// Words that name no object: "is *anything* failing?" asks about every object.
const ANY_OBJECT_WORDS: &[&str] = &[
    "anything",
    "everything",
    "something",
    "any",
    "objects",
    "object",
    "resources",
    "resource",
    "workloads",
    "workload",
    "things",
    "now",
    "currently",
    "right",
    "cluster",
];

/// A question, taken apart for exact matching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryTerms {
    /// Lowercased words that could be names, kinds, namespaces, label values or software
    /// names, followed by the singulars of plural words ("databases" also matches the label
    /// value `database`).
    pub words: Vec<String>,
    /// The categories of software the question asks for.
    pub categories: Vec<Category>,
    /// The kinds of store the question asks for ("key-value stores", "time-series databases").
    pub models: Vec<DataModel>,
    /// The question asks about health ("unhealthy", "failing", "broken").
    pub asks_health: bool,
    /// The question names something beyond health: "are any *databases* unhealthy?" does,
    /// "is anything failing?" does not (every unhealthy object answers it).
    pub names_something: bool,
}

impl QueryTerms {
    pub fn parse(query: &str) -> QueryTerms {
        let tokens: Vec<String> = query
            .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.' || c == '_'))
            .map(|t| {
                t.trim_matches(|c: char| c == '.' || c == '-')
                    .to_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect();
        // Two-word phrases that name a category ("search engines", "message queue"): their
        // words ask for the category and are not matched as names, namespaces or labels.
        let mut categories = Vec::new();
        let mut models = Vec::new();
        let mut in_phrase = vec![false; tokens.len()];
        for (i, pair) in tokens.windows(2).enumerate() {
            // Each word as written or as its singular: "search engines", "message queues".
            let forms = |t: &String| [Some(t.clone()), singular(t)];
            for first in forms(&pair[0]).into_iter().flatten() {
                for second in forms(&pair[1]).into_iter().flatten() {
                    for c in Category::asked_by_phrase(&first, &second) {
                        in_phrase[i] = true;
                        in_phrase[i + 1] = true;
                        if !categories.contains(&c) {
                            categories.push(c);
                        }
                    }
                    for m in DataModel::asked_by_phrase(&first, &second) {
                        in_phrase[i] = true;
                        in_phrase[i + 1] = true;
                        if !models.contains(&m) {
                            models.push(m);
                        }
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        let words: Vec<String> = tokens
            .iter()
            .zip(&in_phrase)
            .filter(|(_, phrase)| !**phrase)
            .map(|(t, _)| t)
            .filter(|t| t.len() >= 2 && !STOPWORDS.contains(&t.as_str()))
            .filter(|t| seen.insert((*t).clone()))
            .cloned()
            .collect();
        let singulars: Vec<String> = words
            .iter()
            .filter_map(|w| singular(w))
            .filter(|s| seen.insert(s.clone()))
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            if in_phrase[i] {
                continue;
            }
            let modifier = tokens.get(i + 1).is_some_and(|next| {
                let next_singular = singular(next);
                ATTRIBUTE_NOUNS
                    .iter()
                    .any(|n| *n == next || Some(*n) == next_singular.as_deref())
            });
            if modifier {
                continue;
            }
            for c in Category::asked_by(token) {
                if !categories.contains(&c) {
                    categories.push(c);
                }
            }
            for m in DataModel::asked_by(token) {
                if !models.contains(&m) {
                    models.push(m);
                }
            }
        }
        let asks_health = tokens.iter().any(|t| HEALTH_WORDS.contains(&t.as_str()))
            || tokens
                .windows(2)
                .any(|w| w[0] == "not" && (w[1] == "ready" || w[1] == "running"));
        let names_something = words.iter().any(|w| {
            !HEALTH_WORDS.contains(&w.as_str())
                && !ANY_OBJECT_WORDS.contains(&w.as_str())
                && !["not", "ready"].contains(&w.as_str())
        }) || !categories.is_empty()
            || !models.is_empty();
        QueryTerms {
            words: words.into_iter().chain(singulars).collect(),
            categories,
            models,
            asks_health,
            names_something,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.categories.is_empty() && self.models.is_empty()
    }

    /// The stored software keys of what the question names or asks for: the software its
    /// words name (`postgres` → `postgresql`), and every software of the categories and kinds
    /// of store it asks for (the catalogue says which: "databases" includes Redis). Keyword
    /// candidates whose own names say neither, and the objects counted as answering.
    pub fn software_candidates(&self) -> Vec<String> {
        let named = self.words.iter().flat_map(|w| Software::named_by(w));
        let of_categories = self.categories.iter().flat_map(|c| Software::answering(*c));
        let of_models = self.models.iter().flat_map(|m| Software::storing(*m));
        let mut software: Vec<String> = named
            .chain(of_categories)
            .chain(of_models)
            .map(|s| s.key().to_string())
            .collect();
        software.sort_unstable();
        software.dedup();
        software
    }

    /// How an object's software answers the categories or kinds of store the question asks
    /// for: `database (key-value store)`, `key-value store`; `None` when it does not.
    pub fn software_answers(&self, software: &Software) -> Option<String> {
        self.categories
            .iter()
            .find_map(|c| software.answers(*c))
            .or_else(|| {
                self.models
                    .iter()
                    .find(|m| software.model == Some(**m))
                    .map(|m| m.describe().to_string())
            })
    }
}

/// `question` without its words of health ("unhealthy", "failing", "not ready"), as an
/// embedding model should read it: `None` when it has none, or nothing else.
pub fn without_health_words(question: &str) -> Option<String> {
    let bare = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let words: Vec<&str> = question.split_whitespace().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = bare(words[i]);
        let next = words.get(i + 1).map(|n| bare(n));
        if w == "not" && matches!(next.as_deref(), Some("ready" | "running")) {
            i += 2;
            continue;
        }
        if !HEALTH_WORDS.contains(&w.as_str()) {
            kept.push(words[i]);
        }
        i += 1;
    }
    let left = kept.join(" ");
    let removed = kept.len() < words.len();
    (removed && left.chars().any(char::is_alphanumeric)).then_some(left)
}

/// English plural to singular for the common shapes: `policies` → `policy`,
/// `classes` → `class`, `databases` → `database`; `None` for words that do not look plural (`redis`, `class`).
fn singular(word: &str) -> Option<String> {
    if word.len() < 5 || !word.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return Some(format!("{stem}y"));
    }
    if ["sses", "xes", "ches", "shes"]
        .iter()
        .any(|e| word.ends_with(e))
    {
        return word.strip_suffix("es").map(str::to_string);
    }
    if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return None;
    }
    word.strip_suffix('s').map(str::to_string)
}

/// The question's words equal (case-insensitively) to the name, the kind, the namespace, a
/// label value or a name of the software the object runs, and the asked categories and kinds
/// of store that software answers, each tagged with where it matched: `name:postgres`,
/// `kind:statefulset`, `namespace:data`, `label:app=postgres`, `software:postgresql`,
/// `category:database`, `model:key-value`.
pub(crate) fn exact_matches(m: &Metadata, terms: &QueryTerms) -> Vec<String> {
    let name = meta_str(m, "name").to_lowercase();
    let kind = meta_str(m, "kind").to_lowercase();
    let namespace = meta_str(m, "namespace").to_lowercase();
    let software = Software::by_key(&meta_str(m, SOFTWARE_KEY));
    let mut out = Vec::new();
    for t in &terms.words {
        if *t == name {
            out.push(format!("name:{t}"));
        }
        if *t == kind {
            out.push(format!("kind:{t}"));
        }
        if *t == namespace {
            out.push(format!("namespace:{t}"));
        }
        for (k, v) in m {
            if let (Some(label), MetaValue::Str(v)) = (k.strip_prefix("label."), v) {
                if v.to_lowercase() == *t {
                    out.push(format!("label:{label}={v}"));
                }
            }
        }
        if let Some(s) = software.filter(|s| s.aka.contains(&t.as_str())) {
            out.push(format!("software:{}", s.key()));
        }
    }
    if let Some(s) = software {
        for c in terms.categories.iter().filter(|c| s.answers(**c).is_some()) {
            out.push(format!("category:{}", c.as_str()));
        }
        for m in terms.models.iter().filter(|m| s.model == Some(**m)) {
            out.push(format!("model:{}", m.as_str()));
        }
    }
    out
}

/// How the object's software answers what the question asks for ([`QueryTerms::software_answers`]).
pub(crate) fn software_answers(m: &Metadata, terms: &QueryTerms) -> Option<String> {
    Software::by_key(&meta_str(m, SOFTWARE_KEY)).and_then(|s| terms.software_answers(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms_drop_stopwords_and_punctuation() {
        assert_eq!(
            QueryTerms::parse("What databases are running? postgres-main, Redis.").words,
            ["databases", "postgres-main", "redis", "database"]
        );
        assert_eq!(
            QueryTerms::parse("network policies and ingress classes").words,
            ["network", "policies", "ingress", "classes", "policy", "class"]
        );
    }

    #[test]
    fn a_category_is_asked_for_unless_it_only_modifies_the_next_noun() {
        let asked = |q: &str| QueryTerms::parse(q).categories;
        assert_eq!(asked("what databases are running?"), [Category::Database]);
        assert_eq!(asked("message queues"), [Category::Queue]);
        assert_eq!(asked("who handles user logins?"), [Category::Auth]);
        assert_eq!(asked("monitoring"), [Category::Monitoring]);
        assert!(asked("what autoscales on queue length?").is_empty());
        assert!(asked("database migrations").is_empty());
        assert!(asked("who handles payments?").is_empty());
    }

    #[test]
    fn a_phrase_naming_a_category_asks_for_it_and_its_words_match_nothing_else() {
        let q = QueryTerms::parse("full-text search engines");
        assert_eq!(q.categories, [Category::SearchEngine]);
        assert!(q.words.is_empty(), "{:?}", q.words);
        assert!(q.names_something && !q.is_empty());
        let q = QueryTerms::parse("which message brokers run in shop?");
        assert_eq!(q.categories, [Category::Queue]);
        assert_eq!(q.words, ["run", "shop"]);
        // The namespace `search` still matches when no phrase takes the word.
        let m: Metadata = [("name", "orders"), ("namespace", "search")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
            .collect();
        assert_eq!(
            exact_matches(&m, &QueryTerms::parse("what runs in search?")),
            ["namespace:search"]
        );
        assert!(exact_matches(&m, &QueryTerms::parse("search engines")).is_empty());
    }

    #[test]
    fn health_words_ask_about_health_and_may_name_nothing_else() {
        let q = QueryTerms::parse("are any databases unhealthy?");
        assert!(q.asks_health && q.names_something);
        let q = QueryTerms::parse("Is anything failing right now?");
        assert!(q.asks_health && !q.names_something);
        let q = QueryTerms::parse("which pods are not ready?");
        assert!(q.asks_health);
        let q = QueryTerms::parse("what databases are running?");
        assert!(!q.asks_health && q.names_something);
    }

    #[test]
    fn a_question_is_embedded_without_its_words_of_health() {
        assert_eq!(
            without_health_words("are any databases unhealthy?").as_deref(),
            Some("are any databases")
        );
        assert_eq!(
            without_health_words("Which pods are not ready?").as_deref(),
            Some("Which pods are")
        );
        assert_eq!(without_health_words("what databases are running?"), None);
        assert_eq!(without_health_words("failing?"), None);
    }

    #[test]
    fn exact_name_label_and_software_matches_are_tagged() {
        let m: Metadata = [
            ("name", "postgres"),
            ("kind", "StatefulSet"),
            ("label.app", "postgres"),
            (SOFTWARE_KEY, "postgresql"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
        .collect();
        let matched = exact_matches(&m, &QueryTerms::parse("postgres statefulset"));
        assert_eq!(
            matched,
            [
                "name:postgres",
                "label:app=postgres",
                "software:postgresql",
                "kind:statefulset"
            ]
        );
        let matched = exact_matches(&m, &QueryTerms::parse("which databases?"));
        assert_eq!(matched, ["category:database"]);
        assert!(exact_matches(&m, &QueryTerms::parse("database migrations")).is_empty());
    }

    #[test]
    fn software_candidates_are_the_stored_keys_of_what_is_named_or_asked_for() {
        let software = QueryTerms::parse("postgres").software_candidates();
        assert_eq!(software, ["postgresql"]);
        let software = QueryTerms::parse("which databases?").software_candidates();
        for key in ["postgresql", "mongodb", "redis", "etcd"] {
            assert!(software.contains(&key.to_string()), "{key}: {software:?}");
        }
        assert!(!software.contains(&"memcached".to_string()), "{software:?}");
        let software = QueryTerms::parse("key-value stores").software_candidates();
        assert!(
            software.contains(&"memcached".to_string()) && software.contains(&"etcd".to_string())
        );
        assert!(
            !software.contains(&"postgresql".to_string()),
            "{software:?}"
        );
    }

    #[test]
    fn a_key_value_store_answers_a_question_for_databases_and_says_so() {
        let m: Metadata = [("name", "sessions"), (SOFTWARE_KEY, "redis")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
            .collect();
        let terms = QueryTerms::parse("are any databases unhealthy?");
        assert_eq!(exact_matches(&m, &terms), ["category:database"]);
        assert_eq!(
            software_answers(&m, &terms).as_deref(),
            Some("database (key-value store)")
        );
        let terms = QueryTerms::parse("key-value stores");
        assert_eq!(terms.models, [DataModel::KeyValue]);
        assert!(terms.categories.is_empty() && terms.words.is_empty());
        assert_eq!(exact_matches(&m, &terms), ["model:key-value"]);
        assert_eq!(
            software_answers(&m, &terms).as_deref(),
            Some("key-value store")
        );
        let memcached: Metadata = [(SOFTWARE_KEY, "memcached")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), MetaValue::Str(v.to_string())))
            .collect();
        assert!(exact_matches(&memcached, &QueryTerms::parse("databases")).is_empty());
    }
}
