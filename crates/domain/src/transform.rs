//! Published record → Cassandra row. Pure, so every quirk is unit-tested here
//! rather than discovered against a live table.

use crate::row::{Timestamp, UserRow};
use crate::user::User;

/// A record that decoded but cannot become a row: it goes to the dead-letter
/// topic with this reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("login.uuid {0:?} is not a UUID")]
    BadUuid(String),
    #[error("{field} is {value}, which is not a finite number")]
    NotFinite { field: &'static str, value: f64 },
}

/// Builds the row for `user`, moving its strings into the row (the consumer
/// decodes a `User` per record only to make this row of it; copying its twenty
/// strings again cost about a microsecond per row). `produced_at_ms` is the
/// Kafka record's timestamp.
pub fn to_row(user: User, produced_at_ms: i64) -> Result<UserRow, TransformError> {
    let id = uuid::Uuid::parse_str(&user.login.uuid)
        .map_err(|_| TransformError::BadUuid(user.login.uuid.clone()))?;
    let loc = user.location;
    let latitude = finite("location.coordinates.latitude", loc.coordinates.latitude)?;
    let longitude = finite("location.coordinates.longitude", loc.coordinates.longitude)?;
    Ok(UserRow {
        id,
        first_name: user.name.first,
        last_name: user.name.last,
        title: user.name.title,
        gender: user.gender,
        address: format!(
            "{} {}, {}, {}, {}",
            loc.street.number, loc.street.name, loc.city, loc.state, loc.country
        ),
        city: loc.city,
        state: loc.state,
        country: loc.country,
        post_code: loc.postcode,
        latitude,
        longitude,
        email: user.email,
        username: user.login.username,
        phone: user.phone,
        cell: user.cell,
        dob: Timestamp(user.dob.date),
        registered_date: Timestamp(user.registered.date),
        picture: user.picture.large,
        nationality: user.nat,
        produced_at: Timestamp(produced_at_ms),
    })
}

fn finite(field: &'static str, value: f64) -> Result<f64, TransformError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TransformError::NotFinite { field, value })
    }
}

#[cfg(test)]
mod tests;
