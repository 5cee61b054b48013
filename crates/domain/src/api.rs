//! One page of the Random User API (`GET /api/1.4/?results=N`), parsed record by
//! record so that one bad record is rejected with its reason while the rest of
//! the page goes on.
//!
//! Quirks of the real API that this module absorbs:
//! - `location.postcode` is an integer for some nationalities (DE, US, ...) and a
//!   string for others (GB "EC1A 1BB", CA "K1A 0B1", NO "0150" with a leading zero);
//! - `location.coordinates` are decimal strings; `location.street.number` is an integer;
//! - `id.value` is null for some nationalities, `id.name` may be empty;
//! - the body may be `{"results": []}` or `{"error": "..."}` even with HTTP 200.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::user::{
    Coordinates, Dated, Location, Login, Name, NationalId, Picture, Street, Timezone, User,
};

/// A page whose records were each either accepted or rejected with a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiPage {
    pub users: Vec<User>,
    pub rejected: Vec<Rejected>,
    /// The API's `info.seed`, which reproduces the page when passed back as `seed`.
    pub seed: Option<String>,
}

/// A record that could not be published, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Position of the record in the page's `results` array.
    pub index: usize,
    /// `login.uuid` when the record had a readable one, to find it in logs.
    pub uuid: Option<String>,
    pub reason: String,
}

/// Why a whole page is unusable. None of these is a partial success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PageError {
    #[error("the API answered with an error: {0}")]
    Api(String),
    #[error("the API answered with no results (`\"results\": []`)")]
    Empty,
    #[error("the API's answer is not a Random User page: {0}")]
    Malformed(String),
    #[error("all {count} records of the page were rejected; first reason: {first}")]
    AllRejected { count: usize, first: String },
}

impl ApiPage {
    /// Parses a response body. Records that fail to parse are returned in
    /// `rejected`; the page only fails as a whole when nothing in it is usable.
    pub fn parse(body: &[u8]) -> Result<ApiPage, PageError> {
        // Nearly every page is clean, and one pass straight into the records costs half
        // of reading the page twice (once to split it into records, once to parse each).
        // Any page that is not clean is read again record by record, which says which
        // records are bad and why.
        match ApiPage::parse_clean(body) {
            Some(page) => Ok(page),
            None => ApiPage::parse_each(body),
        }
    }

    /// The page, if it has results, no error, and every record is publishable.
    fn parse_clean(body: &[u8]) -> Option<ApiPage> {
        let envelope: Envelope<Publishable> = serde_json::from_slice(body).ok()?;
        let users = envelope.results?.0;
        (envelope.error.is_none() && !users.is_empty()).then(|| ApiPage {
            users,
            rejected: Vec::new(),
            seed: envelope.info.and_then(|i| i.seed),
        })
    }

    fn parse_each(body: &[u8]) -> Result<ApiPage, PageError> {
        let envelope: Envelope<Vec<&RawValue>> = serde_json::from_slice(body).map_err(|e| {
            PageError::Malformed(format!("{e} (body starts with {:?})", head(body)))
        })?;
        if let Some(error) = envelope.error {
            return Err(PageError::Api(error));
        }
        let results = envelope
            .results
            .ok_or_else(|| PageError::Malformed("no `results` field".into()))?;
        if results.is_empty() {
            return Err(PageError::Empty);
        }

        let mut users = Vec::with_capacity(results.len());
        let mut rejected = Vec::new();
        for (index, record) in results.into_iter().enumerate() {
            // Each record is parsed on its own from its slice of the body, so a
            // bad one is rejected alone and good ones are parsed only once.
            match serde_json::from_str::<RawUser>(record.get())
                .map_err(|e| e.to_string())
                .and_then(|raw| User::try_from(raw).map_err(|e| e.0))
            {
                Ok(user) => users.push(user),
                Err(reason) => rejected.push(Rejected {
                    index,
                    uuid: uuid_of(record.get()),
                    reason,
                }),
            }
        }
        if users.is_empty() {
            return Err(PageError::AllRejected {
                count: rejected.len(),
                first: rejected[0].reason.clone(),
            });
        }
        Ok(ApiPage {
            users,
            rejected,
            seed: envelope.info.and_then(|i| i.seed),
        })
    }
}

fn head(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned()
}

/// `login.uuid` of a rejected record, when it has a readable one.
fn uuid_of(record: &str) -> Option<String> {
    let value: Value = serde_json::from_str(record).ok()?;
    value.pointer("/login/uuid")?.as_str().map(str::to_owned)
}

/// A page whose `results` are read as `R`: each record's own text (`Vec<&RawValue>`),
/// or straight into users ([`Publishable`]).
#[derive(Deserialize)]
struct Envelope<R> {
    results: Option<R>,
    error: Option<String>,
    info: Option<Info>,
}

/// Records read straight into users, each converted as it is read. The first that does
/// not parse or convert fails the whole read, which then goes record by record.
struct Publishable(Vec<User>);

impl<'de> Deserialize<'de> for Publishable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Publishable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of Random User records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut records: A,
            ) -> Result<Publishable, A::Error> {
                let mut users = Vec::with_capacity(records.size_hint().unwrap_or(0));
                while let Some(raw) = records.next_element::<RawUser<'de>>()? {
                    let user = User::try_from(raw).map_err(|e| serde::de::Error::custom(e.0))?;
                    users.push(user);
                }
                Ok(Publishable(users))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

#[derive(Deserialize)]
struct Info {
    seed: Option<String>,
}

/// A record exactly as the API sends it. `login`'s password, salt and hashes
/// are not fields here, so they are dropped by the parser and never held. Text
/// that is only read on the way to the record (dates, coordinates) is borrowed
/// from the page rather than copied.
#[derive(Debug, Deserialize)]
pub struct RawUser<'a> {
    gender: String,
    name: Name,
    #[serde(borrow)]
    location: RawLocation<'a>,
    email: String,
    login: Login,
    #[serde(borrow)]
    dob: RawDated<'a>,
    #[serde(borrow)]
    registered: RawDated<'a>,
    phone: String,
    cell: String,
    #[serde(default)]
    id: RawId,
    picture: Picture,
    nat: String,
}

#[derive(Debug, Deserialize)]
struct RawLocation<'a> {
    #[serde(borrow)]
    street: RawStreet<'a>,
    city: String,
    state: String,
    country: String,
    #[serde(borrow)]
    postcode: Scalar<'a>,
    #[serde(borrow)]
    coordinates: RawCoordinates<'a>,
    timezone: Timezone,
}

#[derive(Debug, Deserialize)]
struct RawStreet<'a> {
    #[serde(borrow)]
    number: Scalar<'a>,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawCoordinates<'a> {
    #[serde(borrow)]
    latitude: Scalar<'a>,
    #[serde(borrow)]
    longitude: Scalar<'a>,
}

#[derive(Debug, Deserialize)]
struct RawDated<'a> {
    #[serde(borrow)]
    date: Cow<'a, str>,
    age: i32,
}

#[derive(Debug, Default, Deserialize)]
struct RawId {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// A JSON value the API sends sometimes as a number and sometimes as a string.
#[derive(Debug)]
enum Scalar<'a> {
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than `#[serde(untagged)]`, which buffers every value first.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                i64::try_from(v).map(Scalar::Int).map_err(E::custom)
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Scalar<'_> {
    fn into_text(self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.into_owned(),
        }
    }

    fn number(&self, field: &str) -> Result<f64, Invalid> {
        match self {
            Scalar::Int(i) => Ok(*i as f64),
            Scalar::Float(f) => Ok(*f),
            Scalar::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| Invalid(format!("{field} {s:?} is not a number"))),
        }
    }
}

/// Why a parsed record is still not publishable.
#[derive(Debug)]
pub struct Invalid(pub String);

impl TryFrom<RawUser<'_>> for User {
    type Error = Invalid;

    fn try_from(raw: RawUser<'_>) -> Result<User, Invalid> {
        let uuid = uuid::Uuid::parse_str(&raw.login.uuid).map_err(|e| {
            Invalid(format!(
                "login.uuid {:?} is not a UUID: {e}",
                raw.login.uuid
            ))
        })?;
        let loc = raw.location;
        let latitude = loc
            .coordinates
            .latitude
            .number("location.coordinates.latitude")?;
        let longitude = loc
            .coordinates
            .longitude
            .number("location.coordinates.longitude")?;
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return Err(Invalid(format!(
                "location.coordinates ({latitude}, {longitude}) are outside the globe"
            )));
        }
        let street_number = loc.street.number.number("location.street.number")?;
        Ok(User {
            gender: raw.gender,
            name: raw.name,
            location: Location {
                street: Street {
                    number: street_number as i64,
                    name: loc.street.name,
                },
                city: loc.city,
                state: loc.state,
                country: loc.country,
                postcode: loc.postcode.into_text(),
                coordinates: Coordinates {
                    latitude,
                    longitude,
                },
                timezone: loc.timezone,
            },
            email: raw.email,
            login: Login {
                uuid: canonical(uuid, raw.login.uuid),
                username: raw.login.username,
            },
            dob: dated(raw.dob, "dob.date")?,
            registered: dated(raw.registered, "registered.date")?,
            phone: raw.phone,
            cell: raw.cell,
            id: NationalId {
                name: raw.id.name.unwrap_or_default(),
                value: raw.id.value,
            },
            picture: raw.picture,
            nat: raw.nat,
        })
    }
}

/// The uuid as lower-case hyphenated text: the API's own string when it already is
/// (nearly always), without writing it again.
fn canonical(uuid: uuid::Uuid, sent: String) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    let canonical = uuid.hyphenated().encode_lower(&mut buffer);
    if sent == *canonical {
        sent
    } else {
        canonical.to_owned()
    }
}

fn dated(raw: RawDated<'_>, field: &str) -> Result<Dated, Invalid> {
    let date = chrono::DateTime::parse_from_rfc3339(&raw.date).map_err(|e| {
        Invalid(format!(
            "{field} {:?} is not an RFC 3339 date: {e}",
            raw.date
        ))
    })?;
    Ok(Dated {
        date: date.timestamp_millis(),
        age: raw.age,
    })
}

#[cfg(test)]
mod tests;
