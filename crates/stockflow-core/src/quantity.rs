//! The quantity model of one SKU at one location (DESIGN.md section 2).

use serde::{Deserialize, Serialize};

/// The largest quantity any single event, line or state may carry. Keeps every sum of a few
/// quantities far from `i64` overflow, and refuses typos such as a scanned barcode as a quantity.
pub const QUANTITY_MAX: i64 = 1_000_000_000;

/// The named states of stock at a location. `on_hand` is the sum of the first six.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantityState {
    Available,
    Reserved,
    Committed,
    Damaged,
    QualityControl,
    SafetyStock,
    Incoming,
}

impl QuantityState {
    pub const ALL: [QuantityState; 7] = [
        QuantityState::Available,
        QuantityState::Reserved,
        QuantityState::Committed,
        QuantityState::Damaged,
        QuantityState::QualityControl,
        QuantityState::SafetyStock,
        QuantityState::Incoming,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuantityState::Available => "available",
            QuantityState::Reserved => "reserved",
            QuantityState::Committed => "committed",
            QuantityState::Damaged => "damaged",
            QuantityState::QualityControl => "quality_control",
            QuantityState::SafetyStock => "safety_stock",
            QuantityState::Incoming => "incoming",
        }
    }

    pub fn parse(name: &str) -> Option<QuantityState> {
        QuantityState::ALL
            .into_iter()
            .find(|state| state.name() == name)
    }
}

/// Quantities of one SKU at one location. The ledger stores the states other than `available`
/// and `on_hand`; `available` is derived, so the identity
/// `on_hand = available + reserved + committed + damaged + quality_control + safety_stock`
/// holds by construction. `available` may be negative: a physical fact (a pick nobody expected)
/// is never refused, and the shortfall is recorded as an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quantities {
    pub on_hand: i64,
    pub reserved: i64,
    pub committed: i64,
    pub damaged: i64,
    pub quality_control: i64,
    pub safety_stock: i64,
    /// On its way (purchase order, transfer); not part of `on_hand`.
    pub incoming: i64,
    /// Increases by one on every change of this SKU x location; used for optimistic locking.
    pub version: u64,
}

impl Quantities {
    pub fn available(&self) -> i64 {
        self.on_hand
            - self.reserved
            - self.committed
            - self.damaged
            - self.quality_control
            - self.safety_stock
    }

    /// The quantity in `state`; `available` is derived.
    pub fn get(&self, state: QuantityState) -> i64 {
        match state {
            QuantityState::Available => self.available(),
            QuantityState::Reserved => self.reserved,
            QuantityState::Committed => self.committed,
            QuantityState::Damaged => self.damaged,
            QuantityState::QualityControl => self.quality_control,
            QuantityState::SafetyStock => self.safety_stock,
            QuantityState::Incoming => self.incoming,
        }
    }

    /// Adds `delta` to `state`, keeping `on_hand` consistent: a change of `available` or of any
    /// state inside on_hand changes on_hand by the same amount; `incoming` does not.
    /// To move stock between two states use [`Quantities::move_between`].
    pub fn add(&mut self, state: QuantityState, delta: i64) {
        match state {
            QuantityState::Available => self.on_hand += delta,
            QuantityState::Reserved => {
                self.reserved += delta;
                self.on_hand += delta;
            }
            QuantityState::Committed => {
                self.committed += delta;
                self.on_hand += delta;
            }
            QuantityState::Damaged => {
                self.damaged += delta;
                self.on_hand += delta;
            }
            QuantityState::QualityControl => {
                self.quality_control += delta;
                self.on_hand += delta;
            }
            QuantityState::SafetyStock => {
                self.safety_stock += delta;
                self.on_hand += delta;
            }
            QuantityState::Incoming => self.incoming += delta,
        }
    }

    /// Moves `quantity` from one state to another at this location. Moving between two states
    /// inside on_hand leaves on_hand unchanged.
    pub fn move_between(&mut self, from: QuantityState, to: QuantityState, quantity: i64) {
        self.add(from, -quantity);
        self.add(to, quantity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_is_derived_and_moves_keep_on_hand() {
        let mut q = Quantities::default();
        q.add(QuantityState::Available, 10);
        assert_eq!((q.on_hand, q.available()), (10, 10));
        q.move_between(QuantityState::Available, QuantityState::Reserved, 3);
        assert_eq!((q.on_hand, q.available(), q.reserved), (10, 7, 3));
        q.move_between(QuantityState::Reserved, QuantityState::Committed, 2);
        assert_eq!(
            (q.on_hand, q.available(), q.reserved, q.committed),
            (10, 7, 1, 2)
        );
        q.add(QuantityState::Committed, -2);
        assert_eq!((q.on_hand, q.available(), q.committed), (8, 7, 0));
        q.add(QuantityState::Incoming, 5);
        assert_eq!((q.on_hand, q.incoming), (8, 5));
    }

    #[test]
    fn state_names_round_trip() {
        for state in QuantityState::ALL {
            assert_eq!(QuantityState::parse(state.name()), Some(state));
        }
        assert_eq!(QuantityState::parse("on_hand"), None);
    }
}
