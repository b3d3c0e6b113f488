//! Identifiers. Each is a newtype that parses, so a value of the type is always valid: not empty,
//! at most [`ID_LENGTH_MAX`] bytes, printable ASCII without spaces or control characters.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The longest identifier accepted anywhere (event ids, SKUs, locations, ...).
pub const ID_LENGTH_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {length} bytes long; the limit is {ID_LENGTH_MAX}")]
    TooLong { kind: &'static str, length: usize },
    #[error("{kind} contains a character that is not printable ASCII or is a space: {found:?}")]
    BadCharacter { kind: &'static str, found: char },
}

fn check(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > ID_LENGTH_MAX {
        return Err(IdError::TooLong {
            kind,
            length: value.len(),
        });
    }
    if let Some(found) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(IdError::BadCharacter { kind, found });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Shared, immutable text: a clone is a reference count, not an allocation (ids are copied
        /// into every audit entry, reply and index on the ledger's hot path).
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The name used for this kind of id in error messages and problem documents.
            pub const KIND: &'static str = $kind;

            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value)?;
                Ok(Self(Arc::from(value)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.as_ref().to_owned()
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A merchant. Every key carries one; `default` when there is a single merchant.
    TenantId, "tenant"
);
id_type!(
    /// A stock keeping unit, as the merchant names it.
    Sku, "sku"
);
id_type!(
    /// A warehouse, store or other place that holds stock.
    LocationId, "location"
);
id_type!(
    /// A configured sales channel (one Shopify store, one Amazon seller account, ...).
    ChannelId, "channel"
);
id_type!(
    /// The producer-given identity of an event, deduplicated forever within a tenant.
    EventId, "event_id"
);
id_type!(
    /// The caller-given identity of a reservation (usually the channel's order id).
    ReservationId, "reservation_id"
);
id_type!(
    /// A producer of events (a WMS, an OMS, a channel's webhook stream). Orders its events by `seq`.
    SourceId, "source"
);
id_type!(
    /// The person or system that issued a command, for the audit trail.
    ActorId, "actor"
);
id_type!(
    /// A named buffer policy or an operator's hold.
    PolicyId, "policy"
);

impl TenantId {
    pub fn default_tenant() -> Self {
        Self(Arc::from("default"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_ordinary_ids_and_refuses_bad_ones() {
        assert_eq!(Sku::parse("SKU-1").unwrap().as_str(), "SKU-1");
        assert_eq!(Sku::parse(""), Err(IdError::Empty { kind: "sku" }));
        assert_eq!(
            EventId::parse("x".repeat(129)),
            Err(IdError::TooLong {
                kind: "event_id",
                length: 129
            })
        );
        assert!(EventId::parse("x".repeat(128)).is_ok());
        assert_eq!(
            LocationId::parse("east wing"),
            Err(IdError::BadCharacter {
                kind: "location",
                found: ' '
            })
        );
    }

    #[test]
    fn serde_round_trip_refuses_invalid_values() {
        let sku: Sku = serde_json::from_str("\"A-1\"").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"A-1\"");
        assert!(serde_json::from_str::<Sku>("\"\"").is_err());
    }
}
