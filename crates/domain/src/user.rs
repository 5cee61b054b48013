//! The record the producer publishes: the API's nested shape with its quirks
//! resolved (postcode always text, coordinates numeric, dates as instants) and
//! the login credentials gone. Field names match `schemas/user.avsc`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub gender: String,
    pub name: Name,
    pub location: Location,
    pub email: String,
    pub login: Login,
    pub dob: Dated,
    pub registered: Dated,
    pub phone: String,
    pub cell: String,
    pub id: NationalId,
    pub picture: Picture,
    pub nat: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Name {
    pub title: String,
    pub first: String,
    pub last: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub street: Street,
    pub city: String,
    pub state: String,
    pub country: String,
    pub postcode: String,
    pub coordinates: Coordinates,
    pub timezone: Timezone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Street {
    pub number: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timezone {
    pub offset: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    /// Canonical lower-case hyphenated form; the Kafka key and the row's primary key.
    pub uuid: String,
    pub username: String,
}

/// A date with the age derived from it (`dob` and `registered`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dated {
    /// Milliseconds since the Unix epoch, UTC (`timestamp-millis`).
    pub date: i64,
    pub age: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NationalId {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    pub large: String,
    pub medium: String,
    pub thumbnail: String,
}
