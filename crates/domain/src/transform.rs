//! Published record → Cassandra row. Pure, so every quirk is unit-tested here
//! rather than discovered against a live table.

use scylla::value::CqlTimestamp;

use crate::row::UserRow;
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

/// Builds the row for `user`. `produced_at_ms` is the Kafka record's timestamp.
pub fn to_row(user: &User, produced_at_ms: i64) -> Result<UserRow, TransformError> {
    let id = uuid::Uuid::parse_str(&user.login.uuid)
        .map_err(|_| TransformError::BadUuid(user.login.uuid.clone()))?;
    let loc = &user.location;
    let latitude = finite("location.coordinates.latitude", loc.coordinates.latitude)?;
    let longitude = finite("location.coordinates.longitude", loc.coordinates.longitude)?;
    Ok(UserRow {
        id,
        first_name: user.name.first.clone(),
        last_name: user.name.last.clone(),
        title: user.name.title.clone(),
        gender: user.gender.clone(),
        address: format!(
            "{} {}, {}, {}, {}",
            loc.street.number, loc.street.name, loc.city, loc.state, loc.country
        ),
        city: loc.city.clone(),
        state: loc.state.clone(),
        country: loc.country.clone(),
        post_code: loc.postcode.clone(),
        latitude,
        longitude,
        email: user.email.clone(),
        username: user.login.username.clone(),
        phone: user.phone.clone(),
        cell: user.cell.clone(),
        dob: CqlTimestamp(user.dob.date),
        registered_date: CqlTimestamp(user.registered.date),
        picture: user.picture.large.clone(),
        nationality: user.nat.clone(),
        produced_at: CqlTimestamp(produced_at_ms),
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
