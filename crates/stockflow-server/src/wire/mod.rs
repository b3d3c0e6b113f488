//! Wire types: the JSON of the HTTP contract (DESIGN.md section 5), parsed by hand into the
//! core's types so that every invalid field gets its own error and the core stays free of JSON.

pub mod audit;
pub mod events;
pub mod reservations;
pub mod skus;

use crate::problem::FieldError;
use stockflow_core::time::Timestamp;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an id newtype, naming the field in the error.
pub fn parse_id<T>(
    field: &str,
    value: Option<&str>,
    parse: impl Fn(String) -> Result<T, stockflow_core::ids::IdError>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let Some(value) = value else {
        errors.push(FieldError::new(
            field,
            "missing_field",
            format!("{field} is required"),
        ));
        return None;
    };
    match parse(value.to_owned()) {
        Ok(id) => Some(id),
        Err(error) => {
            errors.push(FieldError::new(field, "invalid_id", error.to_string()));
            None
        }
    }
}

pub fn parse_time(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    match OffsetDateTime::parse(value, &Rfc3339) {
        Ok(at) => Some(Timestamp((at.unix_timestamp_nanos() / 1_000) as i64)),
        Err(error) => {
            errors.push(FieldError::new(
                field,
                "invalid_time",
                format!("{value:?} is not an RFC 3339 time: {error}"),
            ));
            None
        }
    }
}

/// RFC 3339 with microseconds, UTC.
pub fn format_time(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.0.to_string())
}

pub fn check_text(field: &str, value: &Option<String>, errors: &mut Vec<FieldError>) {
    if let Some(text) = value
        && text.len() > stockflow_core::event::TEXT_LENGTH_MAX
    {
        errors.push(FieldError::new(
            field,
            "text_too_long",
            format!(
                "{field} is {} bytes; the limit is {}",
                text.len(),
                stockflow_core::event::TEXT_LENGTH_MAX
            ),
        ));
    }
}
