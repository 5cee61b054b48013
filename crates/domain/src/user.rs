//! The record the producer publishes: the API's nested shape with its quirks
//! resolved (postcode always text, coordinates numeric, dates as instants) and
//! the login credentials gone. Field names match `schemas/user.avsc`.
//!
//! The text type is a parameter: the producer reads a page's users as [`Text`] borrowed
//! from the page and encodes them without copying a string; everything else holds
//! `String`s, the default, so `User` means `User<String>`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User<S = String> {
    pub gender: S,
    pub name: Name<S>,
    pub location: Location<S>,
    pub email: S,
    pub login: Login<S>,
    pub dob: Dated,
    pub registered: Dated,
    pub phone: S,
    pub cell: S,
    pub id: NationalId<S>,
    pub picture: Picture<S>,
    pub nat: S,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Name<S = String> {
    pub title: S,
    pub first: S,
    pub last: S,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location<S = String> {
    pub street: Street<S>,
    pub city: S,
    pub state: S,
    pub country: S,
    pub postcode: S,
    pub coordinates: Coordinates,
    pub timezone: Timezone<S>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Street<S = String> {
    pub number: i64,
    pub name: S,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timezone<S = String> {
    pub offset: S,
    pub description: S,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login<S = String> {
    /// Canonical lower-case hyphenated form; the Kafka key and the row's primary key.
    pub uuid: S,
    pub username: S,
}

/// A date with the age derived from it (`dob` and `registered`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dated {
    /// Milliseconds since the Unix epoch, UTC (`timestamp-millis`).
    pub date: i64,
    pub age: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NationalId<S = String> {
    pub name: S,
    pub value: Option<S>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picture<S = String> {
    pub large: S,
    pub medium: S,
    pub thumbnail: S,
}
