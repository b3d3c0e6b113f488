//! Per-SKU attributes that policies select on (tier, criticality, margin, tags), and the selector
//! that picks SKUs by them and by historical volatility (tiering).

use super::amount::{Percent, Ratio};
use super::channel::too_many;
use super::limits::{LABEL_LENGTH_MAX, SELECTOR_SKUS_MAX, SELECTOR_VALUES_MAX, SKU_TAGS_MAX};
use crate::ids::Sku;
use crate::outcome::Rejection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuAttributes {
    /// A class such as "A", "B", "C".
    #[serde(default)]
    pub tier: Option<String>,
    /// Higher is more critical.
    #[serde(default)]
    pub criticality: Option<u32>,
    /// Gross margin, -100% to 100%.
    #[serde(default)]
    pub margin: Option<Percent>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
}

impl SkuAttributes {
    pub(super) fn validate(&self, sku: &Sku) -> Result<(), Rejection> {
        let invalid = |detail: String| Rejection::InvalidAttributes {
            sku: sku.clone(),
            detail,
        };
        if let Some(tier) = &self.tier {
            check_label(tier).map_err(|detail| invalid(format!("tier: {detail}")))?;
        }
        too_many("tags", self.tags.len(), SKU_TAGS_MAX)?;
        for tag in &self.tags {
            check_label(tag).map_err(|detail| invalid(format!("tag: {detail}")))?;
        }
        if let Some(margin) = self.margin
            && !(-10_000..=10_000).contains(&margin.basis_points())
        {
            return Err(Rejection::InvalidPercentage {
                field: "margin".to_owned(),
                value: margin,
            });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == SkuAttributes::default()
    }
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > LABEL_LENGTH_MAX {
        return Err(format!("must be 1 to {LABEL_LENGTH_MAX} bytes"));
    }
    if !label.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("{label:?} must be printable ASCII without spaces"));
    }
    Ok(())
}

/// Which SKUs a policy applies to. Every condition given must hold; an empty selector selects
/// every SKU.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// These SKUs only (when not empty).
    #[serde(default)]
    pub skus: BTreeSet<Sku>,
    /// SKUs whose tier is one of these (when not empty).
    #[serde(default)]
    pub tiers: BTreeSet<String>,
    #[serde(default)]
    pub criticality_min: Option<u32>,
    #[serde(default)]
    pub margin_min: Option<Percent>,
    #[serde(default)]
    pub margin_max: Option<Percent>,
    /// SKUs with at least one of these tags (when not empty).
    #[serde(default)]
    pub tags_any: BTreeSet<String>,
    /// SKUs whose historical volatility (their highest recent spike of hourly demand against
    /// their own baseline, see `velocity`) reached this.
    #[serde(default)]
    pub volatility_min: Option<Ratio>,
}

impl Selector {
    /// Whether the SKU is selected. Cheap: no allocation, small set look-ups.
    pub fn matches(
        &self,
        sku: &Sku,
        attributes: Option<&SkuAttributes>,
        volatility: Ratio,
    ) -> bool {
        if !self.skus.is_empty() && !self.skus.contains(sku) {
            return false;
        }
        if self
            .volatility_min
            .is_some_and(|minimum| volatility < minimum)
        {
            return false;
        }
        if !self.needs_attributes() {
            return true;
        }
        let Some(attributes) = attributes else {
            return false;
        };
        let tier_ok = self.tiers.is_empty()
            || attributes
                .tier
                .as_ref()
                .is_some_and(|tier| self.tiers.contains(tier));
        let criticality_ok = self
            .criticality_min
            .is_none_or(|minimum| attributes.criticality.is_some_and(|c| c >= minimum));
        let margin_ok = match (attributes.margin, self.margin_min, self.margin_max) {
            (_, None, None) => true,
            (None, _, _) => false,
            (Some(margin), minimum, maximum) => {
                minimum.is_none_or(|m| margin >= m) && maximum.is_none_or(|m| margin <= m)
            }
        };
        let tags_ok = self.tags_any.is_empty()
            || attributes
                .tags
                .iter()
                .any(|tag| self.tags_any.contains(tag));
        tier_ok && criticality_ok && margin_ok && tags_ok
    }

    fn needs_attributes(&self) -> bool {
        !self.tiers.is_empty()
            || self.criticality_min.is_some()
            || self.margin_min.is_some()
            || self.margin_max.is_some()
            || !self.tags_any.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), Rejection> {
        too_many("selector.skus", self.skus.len(), SELECTOR_SKUS_MAX)?;
        too_many("selector.tiers", self.tiers.len(), SELECTOR_VALUES_MAX)?;
        too_many(
            "selector.tags_any",
            self.tags_any.len(),
            SELECTOR_VALUES_MAX,
        )?;
        for label in self.tiers.iter().chain(&self.tags_any) {
            check_label(label).map_err(|detail| Rejection::InvalidPolicy {
                policy: None,
                detail: format!("selector: {detail}"),
            })?;
        }
        for (field, margin) in [
            ("selector.margin_min", self.margin_min),
            ("selector.margin_max", self.margin_max),
        ] {
            if let Some(value) = margin
                && !(-10_000..=10_000).contains(&value.basis_points())
            {
                return Err(Rejection::InvalidPercentage {
                    field: field.to_owned(),
                    value,
                });
            }
        }
        if self.volatility_min.is_some_and(|v| v < Ratio::ZERO) {
            return Err(Rejection::InvalidPolicy {
                policy: None,
                detail: "selector.volatility_min must not be negative".to_owned(),
            });
        }
        Ok(())
    }

    /// A short description for explanations ("tier A, tag viral"); empty for "every SKU".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.skus.is_empty() {
            parts.push(format!("{} named SKUs", self.skus.len()));
        }
        if !self.tiers.is_empty() {
            parts.push(format!("tier {}", join(&self.tiers)));
        }
        if let Some(minimum) = self.criticality_min {
            parts.push(format!("criticality >= {minimum}"));
        }
        if let Some(minimum) = self.margin_min {
            parts.push(format!("margin >= {minimum}"));
        }
        if let Some(maximum) = self.margin_max {
            parts.push(format!("margin <= {maximum}"));
        }
        if !self.tags_any.is_empty() {
            parts.push(format!("tag {}", join(&self.tags_any)));
        }
        if let Some(minimum) = self.volatility_min {
            parts.push(format!("volatility >= {minimum}"));
        }
        parts.join(", ")
    }
}

fn join(values: &BTreeSet<String>) -> String {
    let mut out = String::new();
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push('/');
        }
        let _ = write!(out, "{value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(tier: &str, margin_percent: i64, tags: &[&str]) -> SkuAttributes {
        SkuAttributes {
            tier: Some(tier.to_owned()),
            criticality: Some(2),
            margin: Some(Percent::whole(margin_percent)),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn check(selector: &Selector, cases: &[(Option<SkuAttributes>, i64, bool)]) {
        let sku = Sku::parse("SKU-1").unwrap();
        for (attributes, volatility, expected) in cases {
            assert_eq!(
                selector.matches(&sku, attributes.as_ref(), Ratio::whole(*volatility)),
                *expected,
                "{selector:?} on {attributes:?} at volatility {volatility}"
            );
        }
    }

    #[test]
    fn selectors_pick_by_tier_margin_tags_and_volatility() {
        check(
            &Selector::default(),
            &[(None, 0, true), (Some(attributes("C", 5, &[])), 0, true)],
        );
        let tier_a = Selector {
            tiers: ["A".to_owned()].into(),
            ..Selector::default()
        };
        check(
            &tier_a,
            &[
                (None, 0, false),
                (Some(attributes("A", 5, &[])), 0, true),
                (Some(attributes("C", 5, &[])), 0, false),
            ],
        );
        let high_margin_viral = Selector {
            margin_min: Some(Percent::whole(30)),
            tags_any: ["viral".to_owned(), "drop".to_owned()].into(),
            ..Selector::default()
        };
        check(
            &high_margin_viral,
            &[
                (Some(attributes("A", 40, &["viral"])), 0, true),
                (Some(attributes("A", 20, &["viral"])), 0, false),
                (Some(attributes("A", 40, &["basic"])), 0, false),
            ],
        );
        let volatile = Selector {
            volatility_min: Some(Ratio::whole(5)),
            ..Selector::default()
        };
        check(&volatile, &[(None, 4, false), (None, 5, true)]);
        let critical = Selector {
            criticality_min: Some(3),
            ..Selector::default()
        };
        check(&critical, &[(Some(attributes("A", 1, &[])), 0, false)]);
    }

    #[test]
    fn attribute_refusals() {
        let sku = Sku::parse("SKU-1").unwrap();
        let code = |a: SkuAttributes| a.validate(&sku).err().map(|r| r.code());
        assert_eq!(code(attributes("A", 10, &["x"])), None);
        assert_eq!(code(attributes("A", 101, &[])), Some("invalid_percentage"));
        assert_eq!(code(attributes("A B", 1, &[])), Some("invalid_attributes"));
        let many: Vec<String> = (0..17).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(code(attributes("A", 1, &many)), Some("too_many_items"));
    }
}
