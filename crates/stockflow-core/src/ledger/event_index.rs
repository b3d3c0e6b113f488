//! The set of every event id a tenant ever applied or held, with the fingerprint of its body.
//!
//! It only grows ("deduplicated forever"), and every event looks itself up in it, so it must stay
//! fast at tens of millions of entries: a B-tree there costs a cache miss per level on every
//! event. Keys are SHA-256 fingerprints, uniformly spread, so a hash map can use their bytes as
//! the hash directly (no hashing cost, no random seed). The map is cut into 256 shards by the
//! first key byte so that growing it rehashes one small shard at a time rather than stalling the
//! writer on one huge resize.
//!
//! Iteration order never reaches an output: serialisation writes the entries sorted, so a
//! snapshot is byte-for-byte the same whatever order the events arrived in.

use super::fingerprint::Fingerprint;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

const SHARD_COUNT: usize = 256;

type Shard = HashMap<Fingerprint, Fingerprint, BuildHasherDefault<FingerprintHasher>>;

#[derive(Clone, PartialEq)]
pub struct EventIndex {
    shards: Vec<Shard>,
    length: usize,
}

impl Default for EventIndex {
    fn default() -> Self {
        EventIndex {
            shards: (0..SHARD_COUNT).map(|_| Shard::default()).collect(),
            length: 0,
        }
    }
}

impl EventIndex {
    fn shard(key: &Fingerprint) -> usize {
        usize::from(key.0[0])
    }

    pub fn get(&self, key: &Fingerprint) -> Option<&Fingerprint> {
        self.shards[Self::shard(key)].get(key)
    }

    /// Remembers `key`; returns the body it had if it was known already.
    pub fn insert(&mut self, key: Fingerprint, body: Fingerprint) -> Option<Fingerprint> {
        let previous = self.shards[Self::shard(&key)].insert(key, body);
        if previous.is_none() {
            self.length += 1;
        }
        previous
    }

    /// Remembers `key` unless it is known; returns the body it had if it was. One search.
    pub fn insert_if_absent(&mut self, key: Fingerprint, body: Fingerprint) -> Option<Fingerprint> {
        match self.shards[Self::shard(&key)].entry(key) {
            std::collections::hash_map::Entry::Occupied(known) => Some(*known.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(body);
                self.length += 1;
                None
            }
        }
    }

    pub fn remove(&mut self, key: &Fingerprint) -> Option<Fingerprint> {
        let removed = self.shards[Self::shard(key)].remove(key);
        if removed.is_some() {
            self.length -= 1;
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Every entry, ordered by key.
    pub fn sorted(&self) -> Vec<(Fingerprint, Fingerprint)> {
        let mut entries: Vec<(Fingerprint, Fingerprint)> = self
            .shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(key, body)| (*key, *body)))
            .collect();
        entries.sort_unstable();
        entries
    }
}

impl fmt::Debug for EventIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventIndex")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Serialised as a map from id fingerprint to body fingerprint, sorted by key.
impl Serialize for EventIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.length))?;
        for (key, body) in self.sorted() {
            map.serialize_entry(&key, &body)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EventIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<Fingerprint, Fingerprint>::deserialize(deserializer)?;
        let mut index = EventIndex::default();
        for (key, body) in entries {
            index.insert(key, body);
        }
        Ok(index)
    }
}

/// Uses eight bytes of the fingerprint itself (not the first, which picks the shard): they are
/// already uniformly distributed, being SHA-256 output.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for inputs other than a fingerprint; mix them in simply.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(seed: u8) -> Fingerprint {
        let mut bytes = [seed; 16];
        bytes[0] = seed.wrapping_mul(37);
        Fingerprint(bytes)
    }

    #[test]
    fn serialises_sorted_whatever_the_insertion_order() {
        let mut forward = EventIndex::default();
        let mut backward = EventIndex::default();
        for seed in 0..50u8 {
            forward.insert(fingerprint(seed), fingerprint(seed + 1));
            backward.insert(fingerprint(49 - seed), fingerprint(50 - seed));
        }
        let json = serde_json::to_string(&forward).unwrap();
        assert_eq!(json, serde_json::to_string(&backward).unwrap());
        let back: EventIndex = serde_json::from_str(&json).unwrap();
        assert_eq!(back, forward);
        assert_eq!(back.len(), 50);
        assert_eq!(forward.remove(&fingerprint(3)), Some(fingerprint(4)));
        assert_eq!(forward.get(&fingerprint(3)), None);
        assert_eq!(forward.len(), 49);
    }
}
