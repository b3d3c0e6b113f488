//! Reservation requests and answers.

use super::{check_text, format_time, parse_id};
use crate::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use stockflow_core::command::{
    RESERVATION_LINES_MAX, RESERVATION_TTL_SECONDS_MAX, ReservationLineRequest, Reserve,
};
use stockflow_core::ids::{ChannelId, LocationId, ReservationId, Sku};
use stockflow_core::quantity::QUANTITY_MAX;
use stockflow_core::reservation::Reservation;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveIn {
    #[schema(example = "shopify-1001")]
    pub reservation_id: String,
    /// The channel the order came from: its location priority decides lines without a location.
    pub channel: Option<String>,
    pub lines: Vec<LineIn>,
    /// How long the provisional reservation lives unless confirmed (default from configuration).
    pub ttl_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    pub sku: String,
    pub quantity: i64,
    pub location: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmIn {
    /// Absent: confirm every line in full. Present: confirm these quantities; the rest returns
    /// to available.
    pub lines: Option<Vec<LineIn>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseIn {
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationOut {
    pub reservation_id: String,
    pub channel: Option<String>,
    /// provisional | confirmed | fulfilled | released | expired
    pub state: String,
    pub lines: Vec<ReservationLineOut>,
    pub created_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationLineOut {
    pub sku: String,
    pub location: String,
    pub quantity: i64,
    pub confirmed: i64,
    pub picked: i64,
    /// Units the line still holds (reserved while provisional, committed once confirmed).
    pub held: i64,
}

impl ReservationOut {
    pub fn from_core(reservation: &Reservation) -> Self {
        Self {
            reservation_id: reservation.reservation_id.to_string(),
            channel: reservation.channel.as_ref().map(ToString::to_string),
            state: reservation.state.name().to_owned(),
            lines: reservation
                .lines
                .iter()
                .map(|line| ReservationLineOut {
                    sku: line.sku.to_string(),
                    location: line.location.to_string(),
                    quantity: line.quantity,
                    confirmed: line.confirmed,
                    picked: line.picked,
                    held: line.held,
                })
                .collect(),
            created_at: format_time(reservation.created_at),
            expires_at: format_time(reservation.expires_at),
            resolved_at: reservation.resolved_at.map(format_time),
            resolution_reason: reservation.resolution_reason.clone(),
        }
    }
}

pub fn parse_reserve(input: ReserveIn, default_ttl_seconds: u32) -> Result<Reserve, Problem> {
    let mut errors = Vec::new();
    let reservation_id = parse_id(
        "reservation_id",
        Some(&input.reservation_id),
        ReservationId::parse,
        &mut errors,
    );
    let channel = input
        .channel
        .as_deref()
        .and_then(|channel| parse_id("channel", Some(channel), ChannelId::parse, &mut errors));
    let ttl_seconds = input.ttl_seconds.unwrap_or(default_ttl_seconds);
    if !(1..=RESERVATION_TTL_SECONDS_MAX).contains(&ttl_seconds) {
        errors.push(FieldError::new(
            "ttl_seconds",
            "invalid_ttl",
            format!("ttl_seconds must be between 1 and {RESERVATION_TTL_SECONDS_MAX}"),
        ));
    }
    let lines = parse_lines("lines", &input.lines, &mut errors);
    if errors.is_empty() {
        Ok(Reserve {
            reservation_id: reservation_id.expect("parsed without errors"),
            channel,
            lines,
            ttl_seconds,
        })
    } else {
        Err(Problem::invalid(errors))
    }
}

pub fn parse_confirm_lines(lines: &[LineIn]) -> Result<Vec<ReservationLineRequest>, Problem> {
    let mut errors = Vec::new();
    let lines = parse_lines("lines", lines, &mut errors);
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(Problem::invalid(errors))
    }
}

pub fn check_release(input: &ReleaseIn) -> Result<(), Problem> {
    let mut errors = Vec::new();
    check_text("reason", &input.reason, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(errors))
    }
}

fn parse_lines(
    field: &str,
    lines: &[LineIn],
    errors: &mut Vec<FieldError>,
) -> Vec<ReservationLineRequest> {
    if lines.is_empty() || lines.len() > RESERVATION_LINES_MAX {
        errors.push(FieldError::new(
            field,
            "invalid_lines",
            format!(
                "between 1 and {RESERVATION_LINES_MAX} lines, got {}",
                lines.len()
            ),
        ));
        return Vec::new();
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let sku = parse_id(
            &format!("{field}[{index}].sku"),
            Some(&line.sku),
            Sku::parse,
            errors,
        );
        let location = line.location.as_deref().and_then(|location| {
            parse_id(
                &format!("{field}[{index}].location"),
                Some(location),
                LocationId::parse,
                errors,
            )
        });
        if !(1..=QUANTITY_MAX).contains(&line.quantity) {
            errors.push(FieldError::new(
                format!("{field}[{index}].quantity"),
                "invalid_quantity",
                format!(
                    "quantity must be between 1 and {QUANTITY_MAX}, got {}",
                    line.quantity
                ),
            ));
        }
        if let Some(sku) = sku {
            parsed.push(ReservationLineRequest {
                sku,
                location,
                quantity: line.quantity,
            });
        }
    }
    parsed
}
