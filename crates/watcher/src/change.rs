//! The unit that flows from change detection to the sender: an object to upsert or an id
//! to delete, plus the compact content hash the watcher keeps per object instead of the
//! object itself.

use sync_model::{ResourceId, ResourceInstance};

/// One change to the store.
// Upserts are nearly every change and move straight into a batch: boxing them would add an
// allocation per change to spare a delete's few unused bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(ResourceInstance),
    Delete(ResourceId),
}

impl Change {
    pub fn id(&self) -> &ResourceId {
        match self {
            Change::Upsert(i) => &i.id,
            Change::Delete(id) => id,
        }
    }

    pub fn is_delete(&self) -> bool {
        matches!(self, Change::Delete(_))
    }
}

/// The first 128 bits of `ResourceInstance::content_hash()` (its half that covers text,
/// health, images and every other indexed field): enough to tell versions of one object
/// apart, at 16 bytes per object (100,000 objects: under 2 MiB of hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 16]);

impl ContentHash {
    pub fn of(instance: &ResourceInstance) -> Self {
        // content_hash() is lowercase hex of a SHA-256, so parsing cannot fail; fall back to
        // an all-zero hash (never equal to a real one in practice) rather than panic.
        ContentHash::parse(&instance.content_hash()).unwrap_or(ContentHash([0; 16]))
    }

    /// Reads the hex form the ingest server reports (`GET /api/v1/instances/hashes`).
    pub fn parse(hex_digest: &str) -> Option<Self> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(hex_digest.get(..32)?, &mut out).ok()?;
        Some(ContentHash(out))
    }
}
