//! The change classes: the first step of every sync sorts its upserts, by their content
//! hash against the stored one, into *unchanged* (nothing written), *metadata-only* (the
//! stored vector stays; no embedding) and *changed* (embedded and written).
//!
//! An instance is metadata-only when its document text is what is stored but some other
//! field it is indexed by differs: health, owner, creation time, an annotation that is not
//! a description. Those fields are metadata the search filters on or shows, never words
//! the model reads ([`ResourceInstance::document_text`]), so the vector made from the same
//! text is still right, and a health that flips every minute costs no embedding. The
//! content hash carries both answers ([`ResourceInstance::content_hash`]): its first half
//! covers the text and every field ([`content_unchanged`]), its second half the text alone
//! ([`text_unchanged`]).
//!
//! A capability type is metadata-only when its stored text is what this cluster sent but
//! the cluster is not yet on the type's list of clusters serving it: it joins the list, and
//! the text is embedded once however many clusters serve it.

use std::collections::HashMap;

use sync_model::{content_unchanged, text_unchanged, ClusterId, ResourceInstance};

/// What an upsert asks of the store, compared with what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeClass {
    /// The stored document is current: nothing to embed or write.
    Unchanged,
    /// The stored vector is right for the text; only metadata needs writing.
    MetadataOnly,
    /// New, or its text changed: embedded and written.
    Changed,
}

/// A sync's upserts sorted by [`ChangeClass`], each list in the upserts' order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sorted<T> {
    pub unchanged: Vec<T>,
    pub metadata_only: Vec<T>,
    pub changed: Vec<T>,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Sorted {
            unchanged: Vec::new(),
            metadata_only: Vec::new(),
            changed: Vec::new(),
        }
    }
}

/// Sorts `upserts` by the class `class_of` gives each (the rule of their kind:
/// [`instance_change`], [`capability_change`]).
pub fn classify_upserts<T>(
    upserts: impl IntoIterator<Item = T>,
    mut class_of: impl FnMut(&T) -> ChangeClass,
) -> Sorted<T> {
    let mut sorted = Sorted::default();
    for u in upserts {
        match class_of(&u) {
            ChangeClass::Unchanged => sorted.unchanged.push(u),
            ChangeClass::MetadataOnly => sorted.metadata_only.push(u),
            ChangeClass::Changed => sorted.changed.push(u),
        }
    }
    sorted
}

/// The rule for an instance: unchanged when the stored hash covers the same text and
/// fields, metadata-only when it covers the same text alone, changed otherwise (and when
/// nothing is stored).
pub fn instance_change(stored_hash: Option<&str>, current_hash: &str) -> ChangeClass {
    match stored_hash {
        Some(s) if content_unchanged(s, current_hash) => ChangeClass::Unchanged,
        Some(s) if text_unchanged(s, current_hash) => ChangeClass::MetadataOnly,
        _ => ChangeClass::Changed,
    }
}

/// `upserts` of `cluster` sorted against `stored`, the content hashes stored under their
/// cluster-qualified ids.
pub fn classify_instances<'a>(
    upserts: &'a [ResourceInstance],
    cluster: &ClusterId,
    stored: &HashMap<String, String>,
) -> Sorted<&'a ResourceInstance> {
    classify_upserts(upserts, |u| {
        let stored_hash = stored.get(&cluster.qualify(&u.id)).map(String::as_str);
        instance_change(stored_hash, &u.content_hash())
    })
}

/// The rule for a capability type sent by one cluster. Changed when the stored text is not
/// the one sent: its hash differs, or it was stored without enrichment that is now asked
/// for (`awaits_enrichment`: enrichment is on, the sender brought none, the stored document
/// has none). Otherwise metadata-only when the cluster is not on the type's list with this
/// hash (`cluster_hash`: the hash listed for it), unchanged when it is.
pub fn capability_change(
    stored_hash: Option<&str>,
    current_hash: &str,
    awaits_enrichment: bool,
    cluster_hash: Option<&str>,
) -> ChangeClass {
    if stored_hash != Some(current_hash) || awaits_enrichment {
        ChangeClass::Changed
    } else if cluster_hash != Some(current_hash) {
        ChangeClass::MetadataOnly
    } else {
        ChangeClass::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_model::fixtures::nginx;
    use sync_model::{Health, HealthStatus, Owner};

    fn prod() -> ClusterId {
        ClusterId::new("prod").expect("a valid cluster name")
    }

    /// What the store holds after `instances` of prod were written.
    fn stored(instances: &[ResourceInstance]) -> HashMap<String, String> {
        instances
            .iter()
            .map(|i| (prod().qualify(&i.id), i.content_hash()))
            .collect()
    }

    fn class_of(sent: ResourceInstance, stored_as: &ResourceInstance) -> ChangeClass {
        let sorted = classify_instances(
            std::slice::from_ref(&sent),
            &prod(),
            &stored(std::slice::from_ref(stored_as)),
        );
        match (
            sorted.unchanged.len(),
            sorted.metadata_only.len(),
            sorted.changed.len(),
        ) {
            (1, 0, 0) => ChangeClass::Unchanged,
            (0, 1, 0) => ChangeClass::MetadataOnly,
            (0, 0, 1) => ChangeClass::Changed,
            other => panic!("one upsert sorted into {other:?}"),
        }
    }

    #[test]
    fn an_identical_instance_is_unchanged() {
        assert_eq!(class_of(nginx(), &nginx()), ChangeClass::Unchanged);
    }

    #[test]
    fn a_change_of_health_alone_is_metadata_only() {
        let mut failing = nginx();
        failing.health = Some(Health::new(HealthStatus::Failed, "0/3 replicas available"));
        assert_eq!(class_of(failing, &nginx()), ChangeClass::MetadataOnly);
    }

    #[test]
    fn a_health_that_recovers_is_metadata_only() {
        let mut failing = nginx();
        failing.health = Some(Health::new(HealthStatus::Failed, "0/3 replicas available"));
        let mut healthy = nginx();
        healthy.health = Some(Health::new(HealthStatus::Current, "3/3 replicas available"));
        assert_eq!(class_of(healthy, &failing), ChangeClass::MetadataOnly);
    }

    #[test]
    fn a_new_owner_alone_is_metadata_only() {
        let mut owned = nginx();
        owned.owner = Some(Owner {
            kind: "ReplicaSet".into(),
            name: "nginx-5d8f".into(),
        });
        assert_eq!(class_of(owned, &nginx()), ChangeClass::MetadataOnly);
    }

    #[test]
    fn a_new_creation_time_alone_is_metadata_only() {
        let mut recreated = nginx();
        recreated.created_at = "2026-03-01T08:00:00Z".into();
        assert_eq!(class_of(recreated, &nginx()), ChangeClass::MetadataOnly);
    }

    #[test]
    fn a_change_of_labels_is_changed() {
        let mut relabelled = nginx();
        relabelled.labels.insert("tier".into(), "backend".into());
        assert_eq!(class_of(relabelled, &nginx()), ChangeClass::Changed);
    }

    #[test]
    fn a_new_description_is_changed() {
        let mut described = nginx();
        described
            .annotations
            .insert("description".into(), "Serves the shop".into());
        assert_eq!(class_of(described, &nginx()), ChangeClass::Changed);
    }

    #[test]
    fn a_new_image_is_changed_even_when_the_health_changes_with_it() {
        let mut upgraded = nginx();
        upgraded.images = vec!["nginx:1.28".into()];
        upgraded.health = Some(Health::new(HealthStatus::InProgress, "rolling out"));
        assert_eq!(class_of(upgraded, &nginx()), ChangeClass::Changed);
    }

    #[test]
    fn an_instance_nothing_is_stored_for_is_changed() {
        let sent = [nginx()];
        let sorted = classify_instances(&sent, &prod(), &HashMap::new());
        assert_eq!(sorted.changed, vec![&nginx()]);
    }

    #[test]
    fn the_same_instance_stored_for_another_cluster_is_changed() {
        let dev = ClusterId::new("dev").expect("a valid cluster name");
        let sent = [nginx()];
        let sorted = classify_instances(&sent, &dev, &stored(&[nginx()]));
        assert_eq!(sorted.changed.len(), 1);
    }

    #[test]
    fn a_hash_stored_before_the_text_half_existed_is_unchanged_or_changed_never_metadata_only() {
        // The plain SHA-256 of old releases: its first half is the full half of today's.
        let current = nginx().content_hash();
        let old = format!("{}{}", &current[..32], "0".repeat(32));
        assert_eq!(
            instance_change(Some(&old), &current),
            ChangeClass::Unchanged
        );
        let mut failing = nginx();
        failing.health = Some(Health::new(HealthStatus::Failed, "crash loop"));
        assert_eq!(
            instance_change(Some(&old), &failing.content_hash()),
            ChangeClass::Changed
        );
    }

    #[test]
    fn each_class_keeps_the_upserts_order() {
        let sorted = classify_upserts(1..=6, |n| match n % 3 {
            0 => ChangeClass::Unchanged,
            1 => ChangeClass::MetadataOnly,
            _ => ChangeClass::Changed,
        });
        assert_eq!(sorted.unchanged, vec![3, 6]);
        assert_eq!(sorted.metadata_only, vec![1, 4]);
        assert_eq!(sorted.changed, vec![2, 5]);
    }

    #[test]
    fn a_capability_stored_with_the_same_text_for_this_cluster_is_unchanged() {
        assert_eq!(
            capability_change(Some("h1"), "h1", false, Some("h1")),
            ChangeClass::Unchanged
        );
    }

    #[test]
    fn a_cluster_that_starts_serving_a_stored_type_only_joins_its_list() {
        assert_eq!(
            capability_change(Some("h1"), "h1", false, None),
            ChangeClass::MetadataOnly
        );
        // It served an older version, and now the one stored.
        assert_eq!(
            capability_change(Some("h1"), "h1", false, Some("h0")),
            ChangeClass::MetadataOnly
        );
    }

    #[test]
    fn a_capability_of_another_text_is_changed() {
        assert_eq!(
            capability_change(Some("h1"), "h2", false, Some("h1")),
            ChangeClass::Changed
        );
        assert_eq!(
            capability_change(None, "h2", false, None),
            ChangeClass::Changed
        );
    }

    #[test]
    fn a_capability_stored_without_the_enrichment_now_asked_for_is_changed() {
        assert_eq!(
            capability_change(Some("h1"), "h1", true, Some("h1")),
            ChangeClass::Changed
        );
    }
}
