//! Where committed effects go: availability changes to the channel sync, incidents to alerts,
//! touched keys to live views. The server implements [`EffectSink`].

use stockflow_core::envelope::Position;
use stockflow_core::ids::{ReservationId, Sku, TenantId};
use stockflow_core::outcome::{AtsChange, BufferChanges, Incident};
use stockflow_core::time::Timestamp;

/// The effects of one applied envelope, after its batch was committed.
#[derive(Debug, Clone, Copy)]
pub struct Effects<'a> {
    pub shard: usize,
    pub tenant: &'a TenantId,
    /// The journal position; `None` when the envelope changed nothing and was not journaled.
    pub position: Option<Position>,
    pub recorded_at: Timestamp,
    pub availability: &'a [AtsChange],
    pub incidents: &'a [Incident],
    pub touched_skus: &'a [Sku],
    pub touched_reservations: &'a [ReservationId],
    /// Buffers applied, grown, decayed or released (also among the audit entries).
    pub buffer_changes: BufferChanges,
    /// Audit entries the envelope wrote.
    pub audit_entries: usize,
}

/// Receives the effects of every committed batch, in journal order.
///
/// Called on the shard's writer thread, after the commit and the publication of the read
/// model, before the batch's requests are answered. **Implementations must not block**: no
/// IO, no waiting on a full channel, no lock held by anything slow. Copy what is needed into a
/// bounded queue with `try_send` (coalescing or dropping with a counter when it is full) and do
/// the work elsewhere. Every microsecond spent here delays every request of the batch and the
/// next batch.
pub trait EffectSink: Send + Sync + 'static {
    /// `effects` holds only envelopes that produced at least one effect.
    fn committed(&self, effects: &[Effects<'_>]);
}

/// Discards everything: for benchmarks and tests that do not look at effects.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

impl EffectSink for NoopSink {
    fn committed(&self, _effects: &[Effects<'_>]) {}
}
