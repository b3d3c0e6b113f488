//! The coalescing queue of one channel: per key only the newest wanted quantity (by journal
//! position), what the channel is believed to show, and where the key stands (waiting, in
//! flight, backing off). Pure data: time is handed in, nothing here does IO.
//!
//! Its size is the number of distinct keys waiting, never the number of changes offered. Keys
//! wait in priority order: drops to zero, then decreases, then increases, then the values of a
//! first full sync; oldest first within a class.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use stockflow_core::envelope::Position;
use stockflow_core::time::Timestamp;
use tokio::time::Instant;

use crate::adapter::{Entry, Failure, SyncKey};

/// The order in which waiting keys are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// The channel must stop selling: above all.
    Zero,
    /// Less to sell than the channel shows (or unknown what it shows): prevents oversells.
    Decrease,
    Increase,
    /// A value of a first full sync that no real-time change replaced.
    Bulk,
}

/// The newest quantity known for a key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wanted {
    pub quantity: i64,
    pub position: Position,
    pub caused_at: Timestamp,
    /// When the engine was offered this value.
    pub offered_at: Instant,
    pub bulk: bool,
}

/// An error recorded against a key, with the platform's code.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KeyError {
    pub failure: Failure,
    /// Failures in a row.
    pub attempts: u32,
}

#[derive(Clone, Debug, Default)]
struct KeyState {
    wanted: Option<Wanted>,
    /// Position of the newest value the channel acknowledged (0: none).
    acked_position: Position,
    /// What the channel is believed to show (from acknowledgements, reads, orders).
    believed: Option<i64>,
    /// The slot in the ready index, or the retry time in the delayed index.
    slot: Slot,
    /// When the key started waiting (None: not pending), with a sequence number for ties.
    since: Option<(Instant, u64)>,
    /// When the first change after the value in flight arrived.
    since_next: Option<Instant>,
    attempts: u32,
    error: Option<Failure>,
    /// Units the channel itself took for orders, not yet matched against a read.
    order_credits: VecDeque<(Instant, i64)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Slot {
    /// Not pending, or refused.
    #[default]
    None,
    Ready(Priority, u64),
    Delayed(Instant),
    InFlight,
}

/// What became of an offered change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// The key was not waiting; it is now.
    Queued,
    /// The key was already waiting; its value was replaced.
    Coalesced,
    /// The value is not newer than one already known for the key: ignored.
    Stale,
    /// The queue holds `pending_max` keys: refused, counted, reported.
    QueueFull,
}

/// Limits of one queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Most keys waiting at once.
    pub pending_max: usize,
    /// Most keys remembered (waiting or not).
    pub keys_max: usize,
    /// Order credits kept per key.
    pub order_credits_max: usize,
    /// How long an order credit may explain a difference.
    pub order_credit_ttl: Duration,
}

/// A call the queue selected, with the keys it holds in flight.
#[derive(Clone, Debug)]
pub struct Selection {
    pub entries: Vec<Entry>,
}

/// The queue of one channel.
#[derive(Debug)]
pub struct PendingQueue {
    limits: QueueLimits,
    keys: HashMap<SyncKey, KeyState>,
    ready: BTreeSet<(Priority, u64, SyncKey)>,
    delayed: BTreeSet<(Instant, SyncKey)>,
    pending_count: usize,
    in_flight_count: usize,
    sequence: u64,
}

impl PendingQueue {
    pub fn new(limits: QueueLimits) -> Self {
        assert!(limits.pending_max > 0 && limits.keys_max >= limits.pending_max);
        Self {
            limits,
            keys: HashMap::new(),
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            pending_count: 0,
            in_flight_count: 0,
            sequence: 0,
        }
    }

    /// Keys waiting (ready, backing off or in flight).
    pub fn depth(&self) -> usize {
        self.pending_count
    }

    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    pub fn in_flight_count(&self) -> usize {
        self.in_flight_count
    }

    /// Offers the newest value of a key.
    pub fn offer(&mut self, key: &SyncKey, wanted: Wanted) -> Offered {
        if !self.keys.contains_key(key) && self.keys.len() >= self.limits.keys_max {
            return Offered::QueueFull;
        }
        let pending_count = self.pending_count;
        let state = self.keys.entry(key.clone()).or_default();
        let newest = state
            .wanted
            .map_or(0, |w| w.position)
            .max(state.acked_position);
        if state.wanted.is_some() && wanted.position <= newest {
            return Offered::Stale;
        }
        let was_pending = state.since.is_some();
        if !was_pending && pending_count >= self.limits.pending_max {
            return Offered::QueueFull;
        }
        state.wanted = Some(wanted);
        if was_pending {
            if state.slot == Slot::InFlight && state.since_next.is_none() {
                state.since_next = Some(wanted.offered_at);
            }
        } else {
            self.sequence += 1;
            state.since = Some((wanted.offered_at, self.sequence));
            state.attempts = 0;
            self.pending_count += 1;
        }
        self.reindex(key);
        if was_pending {
            Offered::Coalesced
        } else {
            Offered::Queued
        }
    }

    fn priority(state: &KeyState) -> Priority {
        let wanted = state.wanted.expect("pending keys have a wanted value");
        if state.believed == Some(wanted.quantity) {
            return if wanted.bulk {
                Priority::Bulk
            } else {
                Priority::Increase
            };
        }
        if wanted.quantity <= 0 {
            return Priority::Zero;
        }
        if wanted.bulk {
            return Priority::Bulk;
        }
        match state.believed {
            Some(believed) if wanted.quantity > believed => Priority::Increase,
            _ => Priority::Decrease,
        }
    }

    /// Puts a pending key in the index its state calls for.
    fn reindex(&mut self, key: &SyncKey) {
        let state = self.keys.get_mut(key).expect("reindexed keys exist");
        match state.slot {
            Slot::Ready(priority, sequence) => {
                self.ready.remove(&(priority, sequence, key.clone()));
            }
            Slot::Delayed(_) | Slot::InFlight | Slot::None => {}
        }
        if matches!(state.slot, Slot::InFlight | Slot::Delayed(_)) || state.since.is_none() {
            return;
        }
        let priority = Self::priority(state);
        let sequence = state.since.expect("pending").1;
        state.slot = Slot::Ready(priority, sequence);
        self.ready.insert((priority, sequence, key.clone()));
    }

    /// Moves keys whose backoff is over back to the ready index.
    pub fn promote(&mut self, now: Instant) {
        while let Some((at, key)) = self.delayed.first().cloned() {
            if at > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(state) = self.keys.get_mut(&key) {
                state.slot = Slot::None;
                self.reindex(&key);
            }
        }
    }

    /// The next retry time of a backing-off key.
    pub fn next_retry(&self) -> Option<Instant> {
        self.delayed.first().map(|(at, _)| *at)
    }

    /// The highest-priority ready key: its priority and since when it waits.
    pub fn head(&self) -> Option<(Priority, Instant)> {
        let (priority, _, key) = self.ready.first()?;
        Some((*priority, self.keys[key].since.expect("ready keys wait").0))
    }

    /// When the oldest waiting key started waiting.
    pub fn oldest_since(&self) -> Option<Instant> {
        // The ready index is ordered by class first; the oldest may be in any class, backing off
        // or in flight, so look at every pending key's start. Bounded by pending_max.
        self.keys
            .values()
            .filter_map(|state| state.since.map(|s| s.0))
            .min()
    }

    /// Errors recorded against keys still waiting, most attempts first (at most `limit`).
    pub fn errors(&self, limit: usize) -> Vec<(SyncKey, KeyError)> {
        let mut errors: Vec<(SyncKey, KeyError)> = self
            .keys
            .iter()
            .filter(|(_, state)| state.since.is_some())
            .filter_map(|(key, state)| {
                let failure = state.error.clone()?;
                Some((
                    key.clone(),
                    KeyError {
                        failure,
                        attempts: state.attempts,
                    },
                ))
            })
            .collect();
        errors.sort_by(|a, b| b.1.attempts.cmp(&a.1.attempts).then(a.0.cmp(&b.0)));
        errors.truncate(limit);
        errors
    }

    pub fn believed(&self, key: &SyncKey) -> Option<i64> {
        self.keys.get(key).and_then(|state| state.believed)
    }

    pub fn wanted(&self, key: &SyncKey) -> Option<Wanted> {
        self.keys.get(key).and_then(|state| state.wanted)
    }

    pub fn is_pending(&self, key: &SyncKey) -> bool {
        self.keys
            .get(key)
            .is_some_and(|state| state.since.is_some())
    }

    /// Selects the next call: the highest-priority ready key, then more ready keys of the same
    /// group, in priority order, up to `units_max` units, each with its companions. `place`
    /// says where a key goes (or why it cannot be sent: the key then backs off with the error).
    pub fn select(
        &mut self,
        units_max: usize,
        scan_max: usize,
        now: Instant,
        slow_retry: Duration,
        mut place: impl FnMut(&SyncKey) -> Result<crate::adapter::Placement, Failure>,
    ) -> Option<Selection> {
        let mut group: Option<String> = None;
        let mut units: Vec<String> = Vec::new();
        let mut chosen: Vec<(SyncKey, bool)> = Vec::new();
        let candidates: Vec<SyncKey> = self
            .ready
            .iter()
            .take(scan_max)
            .map(|(_, _, key)| key.clone())
            .collect();
        for key in candidates {
            if units.len() >= units_max {
                break;
            }
            if chosen.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let placement = match place(&key) {
                Ok(placement) => placement,
                Err(failure) => {
                    self.take_out(&key);
                    self.fail(&key, failure, now + slow_retry);
                    continue;
                }
            };
            if group.as_ref().is_some_and(|g| *g != placement.group) {
                continue;
            }
            let blocked = placement
                .companions
                .iter()
                .any(|c| self.keys.get(c).is_some_and(|s| s.slot == Slot::InFlight));
            if blocked {
                continue;
            }
            group.get_or_insert(placement.group.clone());
            if !units.contains(&placement.unit) {
                units.push(placement.unit.clone());
            }
            chosen.push((key.clone(), false));
            for companion in placement.companions {
                if companion != key && !chosen.iter().any(|(k, _)| *k == companion) {
                    let waiting = self.keys.get(&companion).is_some_and(|s| s.since.is_some());
                    chosen.push((companion, !waiting));
                }
            }
        }
        if chosen.is_empty() {
            return None;
        }
        Some(self.take_selection(chosen))
    }

    fn take_selection(&mut self, chosen: Vec<(SyncKey, bool)>) -> Selection {
        let mut entries = Vec::with_capacity(chosen.len());
        for (key, companion) in chosen {
            if !companion {
                self.take_out(&key);
                let state = self.keys.get_mut(&key).expect("chosen keys exist");
                state.slot = Slot::InFlight;
                state.since_next = None;
                self.in_flight_count += 1;
            }
            let state = self.keys.entry(key.clone()).or_default();
            let wanted = state.wanted;
            entries.push(Entry {
                key,
                quantity: wanted.map(|w| w.quantity).or(state.believed),
                believed: state.believed,
                position: if companion {
                    state.acked_position
                } else {
                    wanted.map_or(0, |w| w.position)
                },
                caused_at: wanted.map_or(Timestamp(0), |w| w.caused_at),
                companion,
            });
        }
        Selection { entries }
    }

    /// Removes a key from the ready and delayed indexes.
    fn take_out(&mut self, key: &SyncKey) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        match state.slot {
            Slot::Ready(priority, sequence) => {
                self.ready.remove(&(priority, sequence, key.clone()));
            }
            Slot::Delayed(at) => {
                self.delayed.remove(&(at, key.clone()));
            }
            Slot::InFlight | Slot::None => {}
        }
        state.slot = Slot::None;
    }

    fn leave_flight(&mut self, key: &SyncKey) {
        if let Some(state) = self.keys.get_mut(key)
            && state.slot == Slot::InFlight
        {
            state.slot = Slot::None;
            self.in_flight_count -= 1;
        }
    }

    /// The channel acknowledged `quantity` computed at `position` (applied or queued).
    /// Returns true when the key stopped waiting.
    ///
    /// `sent_at` is when the call was formed: orders seen since then happened on the channel
    /// after the value landed (a compare-and-set would have failed otherwise), so the channel
    /// shows the value minus those units.
    pub fn acknowledge(
        &mut self,
        key: &SyncKey,
        quantity: i64,
        position: Position,
        sent_at: Instant,
    ) -> bool {
        self.leave_flight(key);
        let ordered = self.orders_since(key, sent_at);
        let Some(state) = self.keys.get_mut(key) else {
            return false;
        };
        if position >= state.acked_position {
            state.acked_position = position;
            state.believed = Some(quantity - ordered);
        }
        let newest = state.wanted.map_or(0, |w| w.position);
        if state.since.is_none() {
            return false;
        }
        if newest <= state.acked_position {
            state.since = None;
            state.since_next = None;
            state.attempts = 0;
            state.error = None;
            self.pending_count -= 1;
            self.take_out(key);
            return true;
        }
        // Still waiting for a newer value: it waits since the first change after the one just
        // acknowledged.
        let sequence = state.since.expect("pending").1;
        let next = state
            .since_next
            .take()
            .or(state.wanted.map(|w| w.offered_at));
        state.since = next.map(|at| (at, sequence));
        state.attempts = 0;
        state.error = None;
        self.reindex_if_idle(key);
        false
    }

    /// A first full sync through the platform's bulk path landed `quantity` computed at
    /// `position`. If a newer value is known, the key waits again so that the newest value is
    /// sent after the bulk one (a feed may land after a newer real-time call).
    pub fn acknowledge_bulk(&mut self, key: &SyncKey, wanted: Wanted, now: Instant) {
        if !self.keys.contains_key(key) && self.keys.len() >= self.limits.keys_max {
            return;
        }
        let state = self.keys.entry(key.clone()).or_default();
        let newer = state.wanted.is_some_and(|w| w.position > wanted.position);
        if newer {
            self.requeue(key, None, now);
            return;
        }
        state.wanted = Some(wanted);
        if state.since.is_none() {
            state.acked_position = wanted.position;
            state.believed = Some(wanted.quantity);
            return;
        }
        self.acknowledge(key, wanted.quantity, wanted.position, now);
    }

    /// The call failed for this key: it backs off until `retry_at` with the error recorded.
    pub fn fail(&mut self, key: &SyncKey, failure: Failure, retry_at: Instant) {
        self.leave_flight(key);
        self.take_out(key);
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        state.attempts += 1;
        state.error = Some(failure);
        if state.since.is_none() {
            return;
        }
        state.slot = Slot::Delayed(retry_at);
        self.delayed.insert((retry_at, key.clone()));
    }

    /// The channel is known to show `quantity` (see `SyncEngine::prime`).
    pub fn prime(&mut self, key: &SyncKey, quantity: i64) {
        if !self.keys.contains_key(key) && self.keys.len() >= self.limits.keys_max {
            return;
        }
        self.keys.entry(key.clone()).or_default().believed = Some(quantity);
        self.reindex_if_ready(key);
    }

    /// Attempts in the current failure series of a key.
    pub fn attempts(&self, key: &SyncKey) -> u32 {
        self.keys.get(key).map_or(0, |state| state.attempts)
    }

    /// A companion's call ended without an acknowledgement of its own: nothing changes.
    pub fn release_companion(&mut self, key: &SyncKey, applied: Option<i64>) {
        if let (Some(state), Some(quantity)) = (self.keys.get_mut(key), applied) {
            state.believed = Some(quantity);
        }
    }

    /// The channel was read: it shows `found`. Returns the difference to what was believed (0:
    /// no drift). Orders we were told about are already in the belief, so a difference is drift
    /// unless `also_expected` (what the adapter expected when it read, which may know of a value
    /// it sent whose answer was lost) matches.
    pub fn observe(&mut self, key: &SyncKey, found: i64, also_expected: Option<i64>) -> i64 {
        let state = self.keys.entry(key.clone()).or_default();
        let drift = match state.believed {
            Some(believed) if believed != found && also_expected != Some(found) => believed - found,
            _ => 0,
        };
        state.believed = Some(found);
        self.reindex_if_ready(key);
        drift
    }

    /// Units of orders seen for a key since `since` (within the credit lifetime).
    pub fn orders_since(&self, key: &SyncKey, since: Instant) -> i64 {
        self.keys.get(key).map_or(0, |state| {
            state
                .order_credits
                .iter()
                .filter(|(at, _)| *at >= since)
                .map(|(_, units)| units)
                .sum()
        })
    }

    /// The channel itself took `units` for an order: what it shows went down by as much.
    pub fn order_seen(&mut self, key: &SyncKey, units: i64, now: Instant) {
        if !self.keys.contains_key(key) && self.keys.len() >= self.limits.keys_max {
            return;
        }
        let limit = self.limits.order_credits_max;
        let state = self.keys.entry(key.clone()).or_default();
        if let Some(believed) = state.believed.as_mut() {
            *believed -= units;
        }
        let ttl = self.limits.order_credit_ttl;
        state
            .order_credits
            .retain(|(at, _)| now.saturating_duration_since(*at) <= ttl);
        if state.order_credits.len() == limit {
            state.order_credits.pop_front();
        }
        state.order_credits.push_back((now, units));
        self.reindex_if_ready(key);
    }

    fn reindex_if_ready(&mut self, key: &SyncKey) {
        if matches!(self.keys.get(key).map(|s| s.slot), Some(Slot::Ready(..))) {
            self.reindex(key);
        }
    }

    /// A value the channel was told did not land (or a read-back shows something else): the key
    /// waits again with its newest value, whatever was acknowledged.
    pub fn requeue(&mut self, key: &SyncKey, found: Option<i64>, now: Instant) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        if found.is_some() {
            state.believed = found;
        }
        if state.wanted.is_none() {
            return;
        }
        state.acked_position = 0;
        if state.since.is_none() {
            self.sequence += 1;
            state.since = Some((now, self.sequence));
            self.pending_count += 1;
        }
        self.reindex_if_idle(key);
    }

    fn reindex_if_idle(&mut self, key: &SyncKey) {
        if matches!(
            self.keys.get(key).map(|s| s.slot),
            Some(Slot::None | Slot::Ready(..))
        ) {
            self.reindex(key);
        }
    }

    /// Every key's newest value and whether it waits (for a full sync and reconciliation).
    pub fn newest(&self, key: &SyncKey) -> Option<(Wanted, bool)> {
        let state = self.keys.get(key)?;
        Some((state.wanted?, state.since.is_some()))
    }

    /// Acknowledged positions, for checking that a bulk result is still the newest.
    pub fn acked_position(&self, key: &SyncKey) -> Position {
        self.keys.get(key).map_or(0, |state| state.acked_position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{FailureKind, Placement};
    use stockflow_core::ids::Sku;

    fn limits() -> QueueLimits {
        QueueLimits {
            pending_max: 3,
            keys_max: 10,
            order_credits_max: 4,
            order_credit_ttl: Duration::from_secs(60),
        }
    }

    fn key(sku: &str) -> SyncKey {
        SyncKey::new(Sku::parse(sku).unwrap(), None)
    }

    fn wanted(quantity: i64, position: Position, at: Instant) -> Wanted {
        Wanted {
            quantity,
            position,
            caused_at: Timestamp(position as i64),
            offered_at: at,
            bulk: false,
        }
    }

    fn single(key: &SyncKey) -> Result<Placement, Failure> {
        Ok(Placement {
            group: String::new(),
            unit: key.to_string(),
            companions: Vec::new(),
        })
    }

    fn select_all(queue: &mut PendingQueue, now: Instant) -> Vec<(String, Option<i64>)> {
        let selection = queue
            .select(100, 100, now, Duration::from_secs(60), single)
            .unwrap();
        selection
            .entries
            .iter()
            .map(|e| (e.key.to_string(), e.quantity))
            .collect()
    }

    #[test]
    fn coalesces_to_the_newest_value_and_ignores_stale_ones() {
        let now = Instant::now();
        let mut queue = PendingQueue::new(limits());
        let a = key("A");
        assert_eq!(queue.offer(&a, wanted(5, 1, now)), Offered::Queued);
        assert_eq!(queue.offer(&a, wanted(4, 3, now)), Offered::Coalesced);
        assert_eq!(queue.offer(&a, wanted(9, 2, now)), Offered::Stale);
        assert_eq!(queue.depth(), 1);
        assert_eq!(select_all(&mut queue, now), vec![("A".into(), Some(4))]);
    }

    #[test]
    fn zero_then_decreases_then_increases_oldest_first() {
        let start = Instant::now();
        let mut queue = PendingQueue::new(QueueLimits {
            pending_max: 10,
            ..limits()
        });
        for (index, sku) in ["UP", "DOWN", "ZERO", "DOWN2"].iter().enumerate() {
            let k = key(sku);
            queue.offer(&k, wanted(5, 1 + index as u64, start));
            queue.select(1, 10, start, Duration::ZERO, single).unwrap();
            queue.acknowledge(&k, 5, 1 + index as u64, start);
        }
        let at = |ms| start + Duration::from_millis(ms);
        queue.offer(&key("UP"), wanted(8, 10, at(1)));
        queue.offer(&key("DOWN"), wanted(2, 11, at(2)));
        queue.offer(&key("ZERO"), wanted(0, 12, at(3)));
        queue.offer(&key("DOWN2"), wanted(1, 13, at(4)));
        let order: Vec<String> = select_all(&mut queue, at(5))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(order, vec!["ZERO", "DOWN", "DOWN2", "UP"]);
    }

    #[test]
    fn a_full_queue_refuses_new_keys_but_keeps_coalescing_waiting_ones() {
        let now = Instant::now();
        let mut queue = PendingQueue::new(limits());
        for (i, sku) in ["A", "B", "C"].iter().enumerate() {
            assert_eq!(
                queue.offer(&key(sku), wanted(1, i as u64 + 1, now)),
                Offered::Queued
            );
        }
        assert_eq!(
            queue.offer(&key("D"), wanted(1, 9, now)),
            Offered::QueueFull
        );
        assert_eq!(
            queue.offer(&key("A"), wanted(0, 10, now)),
            Offered::Coalesced
        );
        assert_eq!(queue.depth(), 3);
    }

    #[test]
    fn an_acknowledged_older_value_leaves_the_newer_one_waiting() {
        let now = Instant::now();
        let mut queue = PendingQueue::new(limits());
        let a = key("A");
        queue.offer(&a, wanted(5, 1, now));
        select_all(&mut queue, now);
        assert!(queue.select(10, 10, now, Duration::ZERO, single).is_none());
        queue.offer(&a, wanted(3, 2, now));
        assert!(!queue.acknowledge(&a, 5, 1, now));
        assert_eq!(select_all(&mut queue, now), vec![("A".into(), Some(3))]);
        assert!(queue.acknowledge(&a, 3, 2, now));
        assert_eq!(queue.depth(), 0);
        assert_eq!(queue.believed(&a), Some(3));
    }

    #[test]
    fn failures_back_off_and_the_retry_takes_the_newest_value() {
        let now = Instant::now();
        let mut queue = PendingQueue::new(limits());
        let a = key("A");
        queue.offer(&a, wanted(5, 1, now));
        select_all(&mut queue, now);
        let failure = Failure::new(FailureKind::Transient, "http_503", "unavailable");
        queue.fail(&a, failure, now + Duration::from_secs(1));
        queue.offer(&a, wanted(2, 2, now));
        queue.promote(now);
        assert!(queue.select(10, 10, now, Duration::ZERO, single).is_none());
        queue.promote(now + Duration::from_secs(1));
        assert_eq!(
            select_all(&mut queue, now + Duration::from_secs(1)),
            vec![("A".into(), Some(2))]
        );
        assert_eq!(queue.attempts(&a), 1);
        assert_eq!(queue.errors(10).len(), 1);
    }

    #[test]
    fn orders_lower_the_belief_and_a_read_finds_the_rest_as_drift() {
        let now = Instant::now();
        let later = now + Duration::from_millis(5);
        let mut queue = PendingQueue::new(limits());
        let a = key("A");
        queue.offer(&a, wanted(10, 1, now));
        select_all(&mut queue, now);
        queue.order_seen(&a, 2, later);
        // The order came while the value was in flight: the channel took it after the value.
        queue.acknowledge(&a, 10, 1, now);
        assert_eq!(queue.believed(&a), Some(8));
        assert_eq!(queue.orders_since(&a, now), 2);
        assert_eq!(queue.orders_since(&a, later + Duration::from_millis(1)), 0);
        assert_eq!(queue.observe(&a, 7, None), 1);
        assert_eq!(queue.observe(&a, 5, Some(5)), 0);
        assert_eq!(queue.believed(&a), Some(5));
    }
}
