//! Buffer policies: a name, a selector (which SKUs) and one of the four strategies (how much).
//! Channels name the policies that apply to them.

use super::amount::{Amount, Percent, Ratio};
use super::attributes::Selector;
use super::channel::too_many;
use super::limits::{CURVE_POINTS_MAX, RELEASE_STEPS_MAX, SCHEDULE_SECONDS_MAX};
use crate::ids::{ChannelId, PolicyId};
use crate::outcome::Rejection;
use crate::quantity::QUANTITY_MAX;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: PolicyId,
    #[serde(default)]
    pub selector: Selector,
    pub strategy: Strategy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// A fixed quantity or share of the available stock, on every SKU the selector picks.
    Static { amount: Amount },
    /// From recent velocity against the SKU's own baseline, and surge signals.
    Dynamic(DynamicSettings),
    /// Per channel: a configured factor and the channel's measured cancellation rate.
    ChannelAware(ChannelAwareSettings),
    /// A scheduled hold with a release schedule.
    TimeWindow(TimeWindowSettings),
}

/// The strategy of a buffer component, as explanations and audit entries name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    Static,
    Dynamic,
    ChannelAware,
    TimeWindow,
    /// An operator's hold (not a policy).
    Hold,
}

impl StrategyKind {
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Static => "static",
            StrategyKind::Dynamic => "dynamic",
            StrategyKind::ChannelAware => "channel_aware",
            StrategyKind::TimeWindow => "time_window",
            StrategyKind::Hold => "hold",
        }
    }
}

impl Strategy {
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::Static { .. } => StrategyKind::Static,
            Strategy::Dynamic(_) => StrategyKind::Dynamic,
            Strategy::ChannelAware(_) => StrategyKind::ChannelAware,
            Strategy::TimeWindow(_) => StrategyKind::TimeWindow,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicSettings {
    /// Velocity ratio (recent hour against the SKU's trailing daily rate) -> share withheld.
    /// Linear between points, 0 below the first, the last point's share above the last.
    #[serde(default = "default_curve")]
    pub curve: Vec<CurvePoint>,
    /// Fewer units than this in the recent window never count as a spike (one order of a slow
    /// seller is not a trend). Surge signals are not subject to it.
    #[serde(default = "default_recent_units_min")]
    pub recent_units_min: i64,
    /// The baseline is at least this many units per day, so that a slow seller does not show
    /// an enormous ratio for a handful of orders.
    #[serde(default = "default_baseline_units_per_day_min")]
    pub baseline_units_per_day_min: i64,
    /// Hours of demand history before the recent window that a SKU needs before its velocity
    /// is judged against its own baseline (a new SKU's first orders are not a spike; announce a
    /// launch with a surge signal or a time window instead).
    #[serde(default = "default_history_hours_min")]
    pub history_hours_min: u32,
    /// How often a buffer above what demand now calls for is lowered.
    #[serde(default = "default_decay_step_seconds")]
    pub decay_step_seconds: u32,
    /// How much it is lowered each step (percentage points).
    #[serde(default = "default_decay_per_step")]
    pub decay_per_step: Percent,
    /// Whether surge signals count (the larger of the measured ratio and an active signal's
    /// announced multiple of expected demand is used).
    #[serde(default = "default_true")]
    pub use_signals: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurvePoint {
    pub ratio: Ratio,
    pub percent: Percent,
}

/// 3x or less withholds nothing, 5x 5%, 10x 10%, 20x and more 15%: a 10x spike lands inside the
/// 5-15% band the field uses.
pub fn default_curve() -> Vec<CurvePoint> {
    [(3, 0), (5, 5), (10, 10), (20, 15)]
        .into_iter()
        .map(|(ratio, percent)| CurvePoint {
            ratio: Ratio::whole(ratio),
            percent: Percent::whole(percent),
        })
        .collect()
}

fn default_recent_units_min() -> i64 {
    5
}

fn default_baseline_units_per_day_min() -> i64 {
    1
}

fn default_history_hours_min() -> u32 {
    6
}

fn default_decay_step_seconds() -> u32 {
    300
}

fn default_decay_per_step() -> Percent {
    Percent::whole(2)
}

fn default_true() -> bool {
    true
}

fn default_factor() -> Ratio {
    Ratio::ONE
}

fn default_channel_aware_maximum() -> Percent {
    Percent::whole(25)
}

impl Default for DynamicSettings {
    fn default() -> Self {
        Self {
            curve: default_curve(),
            recent_units_min: default_recent_units_min(),
            baseline_units_per_day_min: default_baseline_units_per_day_min(),
            history_hours_min: default_history_hours_min(),
            decay_step_seconds: default_decay_step_seconds(),
            decay_per_step: default_decay_per_step(),
            use_signals: true,
        }
    }
}

impl DynamicSettings {
    /// The measured ratio this policy uses (`None`: too few units, or too little history).
    pub fn measured_ratio(&self, reading: &super::velocity::VelocityReading) -> Option<Ratio> {
        if reading.history_seconds < i64::from(self.history_hours_min) * 3_600 {
            return None;
        }
        reading.ratio(self.recent_units_min, self.baseline_units_per_day_min)
    }

    /// The share the curve gives for `ratio`, rounded down to a whole percent: levels move in
    /// whole points, so a ramp of demand changes (and audits) a buffer at most once per point.
    pub fn share_for(&self, ratio: Ratio) -> Percent {
        let Some(first) = self.curve.first() else {
            return Percent::ZERO;
        };
        if ratio < first.ratio {
            return Percent::ZERO;
        }
        let mut share = self.curve.last().map_or(Percent::ZERO, |p| p.percent);
        for pair in self.curve.windows(2) {
            let (low, high) = (pair[0], pair[1]);
            if ratio < high.ratio {
                let span = i128::from(high.ratio.thousandths() - low.ratio.thousandths());
                let into = i128::from(ratio.thousandths() - low.ratio.thousandths());
                let rise = i128::from(high.percent.basis_points() - low.percent.basis_points());
                let basis_points = i128::from(low.percent.basis_points()) + rise * into / span;
                share = Percent::from_basis_points(basis_points as i64);
                break;
            }
        }
        share.whole_percent_floor()
    }

    fn validate(&self) -> Result<(), String> {
        if self.curve.is_empty() {
            return Err("the curve needs at least one point".to_owned());
        }
        if self.curve.len() > CURVE_POINTS_MAX {
            return Err(format!("the curve has more than {CURVE_POINTS_MAX} points"));
        }
        if self.curve.iter().any(|p| p.ratio < Ratio::ZERO) {
            return Err("curve ratios must not be negative".to_owned());
        }
        for pair in self.curve.windows(2) {
            if pair[1].ratio <= pair[0].ratio {
                return Err("curve ratios must increase".to_owned());
            }
            if pair[1].percent < pair[0].percent {
                return Err("a curve must not withhold less for a higher ratio".to_owned());
            }
        }
        if !(0..=QUANTITY_MAX).contains(&self.recent_units_min) {
            return Err("recent_units_min is out of range".to_owned());
        }
        if !(1..=QUANTITY_MAX).contains(&self.baseline_units_per_day_min) {
            return Err("baseline_units_per_day_min must be at least 1".to_owned());
        }
        if self.history_hours_min > 24 * 30 {
            return Err("history_hours_min must be at most 720 (30 days)".to_owned());
        }
        if !(1..=86_400).contains(&self.decay_step_seconds) {
            return Err("decay_step_seconds must be within 1..=86400".to_owned());
        }
        let top = self
            .curve
            .iter()
            .map(|p| p.percent)
            .max()
            .unwrap_or_default();
        let step = self.decay_per_step.basis_points();
        if step <= 0 || step.saturating_mul(2) > top.basis_points().max(1) {
            // At least two steps from the top of the curve to nothing: never one jump.
            return Err(format!(
                "decay_per_step must be above 0 and at most half the curve's top ({top})"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelAwareSettings {
    /// The share withheld from a channel with factor 1 and no measured cancellations.
    pub base: Percent,
    /// Per channel: more than 1 for marketplaces with late cancellations or long confirmation
    /// windows, 0 for storefronts that reserve instantly.
    #[serde(default)]
    pub factors: BTreeMap<ChannelId, Ratio>,
    /// The factor of channels not named in `factors`.
    #[serde(default = "default_factor")]
    pub default_factor: Ratio,
    /// The channel's measured cancellation rate, times this, is added (0 ignores measurements).
    #[serde(default = "default_factor")]
    pub cancellation_weight: Ratio,
    /// The share never exceeds this.
    #[serde(default = "default_channel_aware_maximum")]
    pub maximum: Percent,
}

impl ChannelAwareSettings {
    pub fn factor(&self, channel: &ChannelId) -> Ratio {
        self.factors
            .get(channel)
            .copied()
            .unwrap_or(self.default_factor)
    }

    /// The share withheld from a channel with `factor` and a measured cancellation rate.
    pub fn share_for(&self, factor: Ratio, cancellation_rate: Option<Percent>) -> Percent {
        let configured = self.base.times(factor).basis_points();
        let measured = cancellation_rate.map_or(0, |rate| {
            rate.times(self.cancellation_weight).basis_points()
        });
        Percent::from_basis_points(
            configured
                .saturating_add(measured)
                .min(self.maximum.basis_points()),
        )
    }

    fn validate(&self) -> Result<(), Rejection> {
        for (field, value) in [("base", self.base), ("maximum", self.maximum)] {
            if !value.is_share() {
                return Err(Rejection::InvalidPercentage {
                    field: field.to_owned(),
                    value,
                });
            }
        }
        too_many("factors", self.factors.len(), super::limits::CHANNELS_MAX)?;
        let factors = self
            .factors
            .values()
            .chain([&self.default_factor, &self.cancellation_weight]);
        for factor in factors {
            if !(Ratio::ZERO..=Ratio::whole(100)).contains(factor) {
                return Err(Rejection::InvalidPolicy {
                    policy: None,
                    detail: format!("factor {factor} is outside 0x to 100x"),
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowSettings {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub amount: Amount,
    pub release: Release,
}

/// How a time window gives its stock back after `ends_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Release {
    /// In `steps` equal steps spread over `period_seconds`.
    Gradual { period_seconds: u32, steps: u32 },
    /// One unit for each unit of the SKU picked after the end; what is left goes at
    /// `period_seconds` after the end.
    AsPicked { period_seconds: u32 },
}

impl Release {
    fn period_micros(self) -> i64 {
        let seconds = match self {
            Release::Gradual { period_seconds, .. } | Release::AsPicked { period_seconds } => {
                period_seconds
            }
        };
        i64::from(seconds) * Timestamp::MICROS_PER_SECOND
    }
}

/// Where a time window stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPhase {
    NotStarted,
    /// Between start and end: the full amount.
    Open,
    /// After the end, gradual: `done` of `steps` steps released.
    Releasing {
        done: u32,
        steps: u32,
    },
    /// After the end, released as picked.
    ReleasingAsPicked,
    Over,
}

impl TimeWindowSettings {
    pub fn phase(&self, now: Timestamp) -> WindowPhase {
        if now < self.starts_at {
            return WindowPhase::NotStarted;
        }
        if now < self.ends_at {
            return WindowPhase::Open;
        }
        let since_end = now.micros_since(self.ends_at);
        let period = self.release.period_micros();
        if since_end >= period {
            return WindowPhase::Over;
        }
        match self.release {
            Release::Gradual { steps, .. } => {
                let done = (i128::from(since_end) * i128::from(steps) / i128::from(period)) as u32;
                WindowPhase::Releasing { done, steps }
            }
            Release::AsPicked { .. } => WindowPhase::ReleasingAsPicked,
        }
    }

    /// The amount the window withholds in `phase` (before units picked are taken off).
    pub fn amount_in(&self, phase: WindowPhase) -> Option<Amount> {
        match phase {
            WindowPhase::NotStarted | WindowPhase::Over => None,
            WindowPhase::Open | WindowPhase::ReleasingAsPicked => Some(self.amount),
            WindowPhase::Releasing { done, steps } => Some(
                self.amount
                    .scaled_up(i64::from(steps - done), i64::from(steps)),
            ),
        }
    }

    /// The instants at which the window's phase changes, in order: start, end, each release step,
    /// over. A tick at each starts a settings sweep.
    pub fn transition(&self, index: u32) -> Option<Timestamp> {
        let period = self.release.period_micros();
        let steps = match self.release {
            Release::Gradual { steps, .. } => steps,
            Release::AsPicked { .. } => 1,
        };
        match index {
            0 => Some(self.starts_at),
            1 => Some(self.ends_at),
            step if step - 1 <= steps => {
                let step = i128::from(step - 1);
                let offset =
                    (i128::from(period) * step + i128::from(steps) - 1) / i128::from(steps);
                Some(self.ends_at.plus_micros(offset as i64))
            }
            _ => None,
        }
    }

    /// How many transitions are at or before `now`.
    pub fn transitions_passed(&self, now: Timestamp) -> u32 {
        let mut index = 0;
        while self.transition(index).is_some_and(|at| at <= now) {
            index += 1;
        }
        index
    }

    fn validate(&self, now: Timestamp) -> Result<(), Rejection> {
        let window = |detail: &str| Rejection::InvalidWindow {
            field: "window".to_owned(),
            detail: detail.to_owned(),
        };
        if self.ends_at <= self.starts_at {
            return Err(window("the window must end after it starts"));
        }
        let length = self.ends_at.micros_since(self.starts_at);
        if length > SCHEDULE_SECONDS_MAX * Timestamp::MICROS_PER_SECOND {
            return Err(window("the window is longer than a year"));
        }
        let period = self.release.period_micros();
        if period <= 0 || period > SCHEDULE_SECONDS_MAX * Timestamp::MICROS_PER_SECOND {
            return Err(window(
                "the release period must be within 1 second and a year",
            ));
        }
        if self.ends_at.plus_micros(period) <= now {
            return Err(window("the window and its release are over already"));
        }
        if let Release::Gradual { steps, .. } = self.release
            && !(2..=RELEASE_STEPS_MAX).contains(&steps)
        {
            return Err(window("a gradual release needs 2 to 100 steps"));
        }
        validate_amount("amount", self.amount)
    }
}

/// Checks an amount: units within 1..=QUANTITY_MAX, a share within 0-100% and not zero.
pub(super) fn validate_amount(field: &str, amount: Amount) -> Result<(), Rejection> {
    match amount {
        Amount::Units(units) if !(1..=QUANTITY_MAX).contains(&units) => {
            Err(Rejection::InvalidQuantity {
                field: field.to_owned(),
                value: units,
            })
        }
        Amount::Percent(percent) if !percent.is_share() || percent == Percent::ZERO => {
            Err(Rejection::InvalidPercentage {
                field: field.to_owned(),
                value: percent,
            })
        }
        _ => Ok(()),
    }
}

impl Policy {
    /// Every check that needs no other state than the time.
    pub(super) fn validate(&self, now: Timestamp) -> Result<(), Rejection> {
        let with_id = |rejection: Rejection| match rejection {
            Rejection::InvalidPolicy {
                policy: None,
                detail,
            } => Rejection::InvalidPolicy {
                policy: Some(self.id.clone()),
                detail,
            },
            other => other,
        };
        self.selector.validate().map_err(with_id)?;
        match &self.strategy {
            Strategy::Static { amount } => validate_amount("amount", *amount),
            Strategy::Dynamic(settings) => {
                for point in &settings.curve {
                    if !point.percent.is_share() {
                        return Err(Rejection::InvalidPercentage {
                            field: "curve.percent".to_owned(),
                            value: point.percent,
                        });
                    }
                }
                if !settings.decay_per_step.is_share() {
                    return Err(Rejection::InvalidPercentage {
                        field: "decay_per_step".to_owned(),
                        value: settings.decay_per_step,
                    });
                }
                settings
                    .validate()
                    .map_err(|detail| Rejection::InvalidPolicy {
                        policy: Some(self.id.clone()),
                        detail,
                    })
            }
            Strategy::ChannelAware(settings) => settings.validate().map_err(with_id),
            Strategy::TimeWindow(settings) => settings.validate(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_curve(settings: &DynamicSettings, cases: &[(i64, i64)]) {
        for &(ratio_thousandths, percent) in cases {
            assert_eq!(
                settings.share_for(Ratio::from_thousandths(ratio_thousandths)),
                Percent::whole(percent),
                "ratio {ratio_thousandths}/1000"
            );
        }
    }

    #[test]
    fn the_default_curve_withholds_inside_the_band_for_a_tenfold_spike() {
        check_curve(
            &DynamicSettings::default(),
            &[
                (0, 0),
                (2_999, 0),
                (3_000, 0),
                (4_000, 2),
                (5_000, 5),
                (10_000, 10),
                (12_400, 11),
                (20_000, 15),
                (1_000_000, 15),
            ],
        );
    }

    #[test]
    fn channel_aware_share_adds_the_measured_rate_and_is_capped() {
        let settings = ChannelAwareSettings {
            base: Percent::whole(4),
            factors: BTreeMap::new(),
            default_factor: Ratio::ONE,
            cancellation_weight: Ratio::whole(2),
            maximum: Percent::whole(10),
        };
        let share = |factor: i64, rate: Option<i64>| {
            settings.share_for(Ratio::from_thousandths(factor), rate.map(Percent::whole))
        };
        assert_eq!(share(1_000, None), Percent::whole(4));
        assert_eq!(share(1_500, None), Percent::whole(6));
        assert_eq!(share(0, None), Percent::ZERO);
        assert_eq!(share(1_000, Some(2)), Percent::whole(8));
        assert_eq!(share(2_000, Some(3)), Percent::whole(10));
    }

    fn window(release: Release) -> TimeWindowSettings {
        TimeWindowSettings {
            starts_at: Timestamp::from_unix_seconds(1_000),
            ends_at: Timestamp::from_unix_seconds(2_000),
            amount: Amount::Units(8),
            release,
        }
    }

    #[test]
    fn a_gradual_window_releases_in_steps_after_its_end() {
        let w = window(Release::Gradual {
            period_seconds: 400,
            steps: 4,
        });
        let at = |seconds| {
            let phase = w.phase(Timestamp::from_unix_seconds(seconds));
            (phase, w.amount_in(phase))
        };
        assert_eq!(at(999), (WindowPhase::NotStarted, None));
        assert_eq!(at(1_000), (WindowPhase::Open, Some(Amount::Units(8))));
        let releasing = |done| WindowPhase::Releasing { done, steps: 4 };
        assert_eq!(at(2_000), (releasing(0), Some(Amount::Units(8))));
        assert_eq!(at(2_100), (releasing(1), Some(Amount::Units(6))));
        assert_eq!(at(2_399), (releasing(3), Some(Amount::Units(2))));
        assert_eq!(at(2_400), (WindowPhase::Over, None));
        let transitions: Vec<i64> = (0..8)
            .filter_map(|i| w.transition(i))
            .map(|t| t.unix_micros() / 1_000_000)
            .collect();
        assert_eq!(transitions, vec![1_000, 2_000, 2_100, 2_200, 2_300, 2_400]);
        assert_eq!(w.transitions_passed(Timestamp::from_unix_seconds(2_150)), 3);
    }

    #[test]
    fn policy_refusals() {
        let now = Timestamp::from_unix_seconds(1_500);
        let policy = |strategy| Policy {
            id: PolicyId::parse("p").unwrap(),
            selector: Selector::default(),
            strategy,
        };
        let code = |strategy| policy(strategy).validate(now).err().map(|r| r.code());
        let dynamic = |change: fn(&mut DynamicSettings)| {
            let mut settings = DynamicSettings::default();
            change(&mut settings);
            Strategy::Dynamic(settings)
        };
        assert_eq!(code(dynamic(|_| {})), None);
        assert_eq!(code(dynamic(|s| s.curve.clear())), Some("invalid_policy"));
        assert_eq!(
            code(dynamic(|s| s.curve[1].percent = Percent::whole(120))),
            Some("invalid_percentage")
        );
        assert_eq!(
            code(dynamic(|s| s.curve.swap(1, 2))),
            Some("invalid_policy")
        );
        assert_eq!(
            code(dynamic(|s| s.decay_per_step = Percent::whole(10))),
            Some("invalid_policy")
        );
        assert_eq!(
            code(Strategy::Static {
                amount: Amount::Percent(Percent::whole(-1))
            }),
            Some("invalid_percentage")
        );
        assert_eq!(
            code(Strategy::Static {
                amount: Amount::Units(0)
            }),
            Some("invalid_quantity")
        );
        let mut backwards = window(Release::AsPicked { period_seconds: 60 });
        backwards.ends_at = backwards.starts_at;
        assert_eq!(
            code(Strategy::TimeWindow(backwards)),
            Some("invalid_window")
        );
        let over = TimeWindowSettings {
            starts_at: Timestamp::from_unix_seconds(0),
            ends_at: Timestamp::from_unix_seconds(100),
            ..window(Release::AsPicked { period_seconds: 60 })
        };
        assert_eq!(code(Strategy::TimeWindow(over)), Some("invalid_window"));
        let one_step = window(Release::Gradual {
            period_seconds: 60,
            steps: 1,
        });
        assert_eq!(code(Strategy::TimeWindow(one_step)), Some("invalid_window"));
    }

    #[test]
    fn policies_read_from_configuration_text() {
        let policy: Policy = serde_json::from_str(
            r#"{"id": "viral-guard", "selector": {"tiers": ["A"]},
                "strategy": {"kind": "dynamic", "decay_per_step": 2.5}}"#,
        )
        .unwrap();
        let Strategy::Dynamic(settings) = &policy.strategy else {
            panic!("{policy:?}")
        };
        assert_eq!(settings.curve, default_curve());
        assert_eq!(settings.decay_per_step, Percent::from_basis_points(250));
        let round_trip: Policy =
            serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
        assert_eq!(round_trip, policy);
        let error = serde_json::from_str::<Policy>(
            r#"{"id": "x", "strategy": {"kind": "static", "amount": {"units": 1}, "typo": 1}}"#,
        );
        assert!(error.is_err());
    }
}
