//! The payload reduced to what must happen, before anything is compared or written: each
//! id once, the newest upsert winning, and no delete of an id that is also upserted.

use std::collections::{HashMap, HashSet};

use sync_model::{ResourceId, ResourceInstance, SyncPayload};

/// A payload reduced to what must happen: distinct deletes that are not also upserted,
/// and distinct upserts, the last of duplicate ids winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalised {
    pub deletes: Vec<ResourceId>,
    pub upserts: Vec<ResourceInstance>,
}

/// Deletes first, then upserts: an id in both was recreated, so it is upserted and not
/// deleted; of duplicate upsert ids the last one wins (it is the newest state).
pub fn normalise(payload: SyncPayload) -> Normalised {
    let (deletes, upserts) =
        last_upsert_wins(payload.upserts, payload.deletes, |i: &ResourceInstance| {
            &i.id
        });
    Normalised { deletes, upserts }
}

/// The rule of [`normalise`] for any payload shape (instances, capabilities): distinct
/// upserts with the last of duplicate keys winning in the first one's position, and
/// distinct deletes that are not also upserted.
pub(crate) fn last_upsert_wins<T, K>(
    upserts: Vec<T>,
    deletes: Vec<K>,
    key: impl Fn(&T) -> &K,
) -> (Vec<K>, Vec<T>)
where
    K: std::hash::Hash + Eq + Clone,
{
    let mut position: HashMap<K, usize> = HashMap::with_capacity(upserts.len());
    let mut kept: Vec<T> = Vec::with_capacity(upserts.len());
    for item in upserts {
        match position.get(key(&item)) {
            Some(&i) => kept[i] = item,
            None => {
                position.insert(key(&item).clone(), kept.len());
                kept.push(item);
            }
        }
    }
    let mut seen = HashSet::with_capacity(deletes.len());
    let deletes = deletes
        .into_iter()
        .filter(|id| !position.contains_key(id) && seen.insert(id.clone()))
        .collect();
    (deletes, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, app: &str) -> ResourceInstance {
        sync_model::fixtures::deployment("default", name, app)
    }

    #[test]
    fn an_id_both_deleted_and_upserted_is_only_upserted() {
        let a = instance("a", "x");
        let n = normalise(SyncPayload {
            cluster: None,
            upserts: vec![a.clone()],
            deletes: vec![a.id.clone(), ResourceId::from_raw("default/v1/Pod/gone")],
        });
        assert_eq!(n.upserts, vec![a]);
        assert_eq!(n.deletes, vec![ResourceId::from_raw("default/v1/Pod/gone")]);
    }

    #[test]
    fn the_last_of_duplicate_upsert_ids_wins_in_first_position() {
        let n = normalise(SyncPayload {
            cluster: None,
            upserts: vec![
                instance("a", "old"),
                instance("b", "x"),
                instance("a", "new"),
            ],
            deletes: vec![],
        });
        assert_eq!(n.upserts.len(), 2);
        assert_eq!(n.upserts[0].labels["app"], "new");
        assert_eq!(n.upserts[1].name, "b");
    }

    #[test]
    fn duplicate_deletes_are_sent_once() {
        let gone = ResourceId::from_raw("default/v1/Pod/gone");
        let n = normalise(SyncPayload {
            cluster: None,
            upserts: vec![],
            deletes: vec![gone.clone(), gone.clone()],
        });
        assert_eq!(n.deletes, vec![gone]);
    }
}
