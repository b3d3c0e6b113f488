//! The read model: views the writers publish after each commit, for HTTP handlers to read
//! without touching a writer's state.
//!
//! Per tenant, an ordered map of SKU views (so that listing pages by cursor) and a map of
//! reservations, each behind its own `RwLock`. A writer takes a write lock once per tenant per
//! batch to insert what changed; readers hold a read lock only to clone an `Arc`. Nothing here
//! is ever newer than the journal: a writer publishes only what it has committed.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use stockflow_core::availability::ExplainInputs;
use stockflow_core::availability::SettingsView;
use stockflow_core::envelope::Position;
use stockflow_core::ids::{LocationId, ReservationId, Sku, TenantId};
use stockflow_core::ledger::{Ledger, SkuView};
use stockflow_core::quantity::Quantities;
use stockflow_core::reservation::Reservation;
use stockflow_core::time::Timestamp;

/// The most SKU views one [`ReadModel::skus`] call returns.
pub const SKU_PAGE_MAX: usize = 1000;

#[derive(Default)]
pub struct ReadModel {
    tenants: RwLock<HashMap<TenantId, Arc<TenantReads>>>,
    /// Per shard, the journal position the published views reflect.
    positions: Vec<AtomicU64>,
}

#[derive(Default)]
struct TenantReads {
    skus: RwLock<BTreeMap<Sku, Arc<SkuView>>>,
    settings: RwLock<Option<Arc<TenantSettings>>>,
    reservations: RwLock<HashMap<ReservationId, Arc<Reservation>>>,
}

/// What a writer publishes for one tenant after a commit.
#[derive(Default)]
pub(crate) struct TenantUpdate {
    pub skus: Vec<SkuUpdate>,
    /// The stock of every SKU of `skus`, one after the other: the writer copies quantities into
    /// one list instead of cloning a map per SKU, and [`ReadModel::publish`] builds the views on
    /// the committer's thread, which frees the views they replace. Memory allocated on one
    /// thread and freed on another is what the allocator handles worst.
    pub locations: Vec<(LocationId, Quantities)>,
    pub reservations: Vec<Reservation>,
    /// Present when the batch changed the tenant's settings (or time may have expired a hold).
    pub settings: Option<TenantSettings>,
}

/// A SKU and its new view (`None`: it has none any more).
type PublishedView = (Sku, Option<Arc<SkuView>>);

/// The view of one SKU as the writer hands it over.
pub(crate) struct SkuUpdate {
    pub sku: Sku,
    /// `None`: the SKU no longer has a view. Otherwise its locations in
    /// [`TenantUpdate::locations`] and what each channel may sell of it.
    pub view: Option<(Range<usize>, ExplainInputs)>,
}

impl TenantUpdate {
    /// Adds the view of `sku` as [`Ledger::sku_view_at`] gives it.
    pub fn push_sku(&mut self, ledger: &Ledger, tenant: &TenantId, sku: &Sku, now: Timestamp) {
        let view = ledger.tenant(tenant).and_then(|state| {
            let stock = state.stock.get(sku)?;
            let start = self.locations.len();
            self.locations
                .extend(stock.iter().map(|(location, q)| (location.clone(), *q)));
            let inputs = state.availability.explain_inputs(sku, now);
            Some((start..self.locations.len(), inputs))
        });
        self.skus.push(SkuUpdate {
            sku: sku.clone(),
            view,
        });
    }

    /// Appends the updates of a later batch: published in order, its views replace these.
    pub fn absorb(&mut self, later: TenantUpdate) {
        let base = self.locations.len();
        self.locations.extend(later.locations);
        self.skus.extend(later.skus.into_iter().map(|mut update| {
            if let Some((range, _)) = &mut update.view {
                *range = range.start + base..range.end + base;
            }
            update
        }));
        self.reservations.extend(later.reservations);
        if later.settings.is_some() {
            self.settings = later.settings;
        }
    }

    /// The views to publish, built from the compact form.
    fn into_views(self) -> (Vec<PublishedView>, Vec<Reservation>) {
        let locations = self.locations;
        let views = self
            .skus
            .into_iter()
            .map(|SkuUpdate { sku, view }| {
                let view = view.map(|(range, inputs)| {
                    let stock = locations[range].iter().cloned().collect();
                    Arc::new(SkuView::deferred(sku.clone(), stock, inputs))
                });
                (sku, view)
            })
            .collect();
        (views, self.reservations)
    }
}

/// A tenant's settings as of a commit: availability settings and the ledger's location priority.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TenantSettings {
    pub availability: SettingsView,
    pub location_priority: Vec<LocationId>,
    /// The journal position these settings reflect.
    pub position: Position,
}

/// Locks are held for map operations only, which cannot leave a map half-changed, so a lock
/// poisoned by a panicking writer still guards consistent data.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ReadModel {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            tenants: RwLock::default(),
            positions: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn sku(&self, tenant: &TenantId, sku: &Sku) -> Option<Arc<SkuView>> {
        let tenant = self.tenant(tenant)?;
        read(&tenant.skus).get(sku).cloned()
    }

    /// The tenant's settings (channels, rules, policies, holds, location priority).
    pub fn settings(&self, tenant: &TenantId) -> Option<Arc<TenantSettings>> {
        let tenant = self.tenant(tenant)?;
        read(&tenant.settings).clone()
    }

    pub fn reservation(&self, tenant: &TenantId, id: &ReservationId) -> Option<Arc<Reservation>> {
        let tenant = self.tenant(tenant)?;
        read(&tenant.reservations).get(id).cloned()
    }

    /// Up to `limit` (at most [`SKU_PAGE_MAX`]) SKU views of `tenant` in SKU order, after the
    /// cursor `after` (the last SKU of the previous page).
    pub fn skus(&self, tenant: &TenantId, after: Option<&Sku>, limit: usize) -> Vec<Arc<SkuView>> {
        let Some(tenant) = self.tenant(tenant) else {
            return Vec::new();
        };
        let skus = read(&tenant.skus);
        let limit = limit.min(SKU_PAGE_MAX);
        match after {
            Some(after) => skus
                .range::<Sku, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(limit)
                .map(|(_, view)| view.clone())
                .collect(),
            None => skus.values().take(limit).cloned().collect(),
        }
    }

    pub fn sku_count(&self, tenant: &TenantId) -> usize {
        self.tenant(tenant).map_or(0, |t| read(&t.skus).len())
    }

    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> = read(&self.tenants).keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// The journal position of `shard` that the published views reflect.
    pub fn position(&self, shard: usize) -> Position {
        self.positions
            .get(shard)
            .map_or(0, |p| p.load(Ordering::Acquire))
    }

    fn tenant(&self, tenant: &TenantId) -> Option<Arc<TenantReads>> {
        read(&self.tenants).get(tenant).cloned()
    }

    fn tenant_or_insert(&self, tenant: &TenantId) -> Arc<TenantReads> {
        if let Some(reads) = self.tenant(tenant) {
            return reads;
        }
        write(&self.tenants)
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    /// Publishes what one batch of `shard` changed, then the position it reflects.
    pub(crate) fn publish(
        &self,
        shard: usize,
        updates: HashMap<TenantId, TenantUpdate>,
        position: Position,
    ) {
        for (tenant, mut update) in updates {
            let reads = self.tenant_or_insert(&tenant);
            if let Some(settings) = update.settings.take() {
                *write(&reads.settings) = Some(Arc::new(settings));
            }
            // Built before the lock is taken, and the replaced views dropped after it is released.
            let (views, reservations) = update.into_views();
            let mut replaced = Vec::with_capacity(views.len());
            if !views.is_empty() {
                let mut skus = write(&reads.skus);
                for (sku, view) in views {
                    replaced.push(match view {
                        Some(view) => skus.insert(sku, view),
                        None => skus.remove(&sku),
                    });
                }
            }
            drop(replaced);
            if !reservations.is_empty() {
                let mut reservations_read = write(&reads.reservations);
                for reservation in reservations {
                    reservations_read
                        .insert(reservation.reservation_id.clone(), Arc::new(reservation));
                }
            }
        }
        if let Some(published) = self.positions.get(shard) {
            published.store(position, Ordering::Release);
        }
    }
}
