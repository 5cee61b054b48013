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

use crate::text::Text;
use crate::user::{
    Coordinates, Dated, Location, Login, Name, NationalId, Picture, Street, Timezone, User,
};

/// A page whose records were each either accepted or rejected with a reason. Its users'
/// text is `String`s ([`ApiPage::parse`]) or borrowed from the page ([`ApiPage::parse_borrowed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiPage<S = String> {
    pub users: Vec<User<S>>,
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
        ApiPage::parse_as(body)
    }
}

impl<'a> ApiPage<Text<'a>> {
    /// [`ApiPage::parse`], the users' text borrowed from `body` rather than copied: what
    /// the producer encodes and drops right away needs no strings of its own.
    pub fn parse_borrowed(body: &'a [u8]) -> Result<ApiPage<Text<'a>>, PageError> {
        ApiPage::parse_as(body)
    }
}

impl<'a, S: Textual<'a>> ApiPage<S> {
    fn parse_as(body: &'a [u8]) -> Result<ApiPage<S>, PageError> {
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
    fn parse_clean(body: &'a [u8]) -> Option<ApiPage<S>> {
        let envelope: Envelope<Publishable<S>> = serde_json::from_slice(body).ok()?;
        let users = envelope.results?.0;
        (envelope.error.is_none() && !users.is_empty()).then(|| ApiPage {
            users,
            rejected: Vec::new(),
            seed: envelope.info.and_then(|i| i.seed),
        })
    }

    fn parse_each(body: &'a [u8]) -> Result<ApiPage<S>, PageError> {
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
            match serde_json::from_str::<RawUser<S>>(record.get())
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

/// What a user's text may be read as: `String` or [`Text`] borrowed from the page.
/// `From<Cow<str>>` is for the text the conversion writes itself (a numeric postcode, a
/// uuid made canonical).
pub trait Textual<'a>: Deserialize<'a> + From<Cow<'a, str>> + AsRef<str> {}

impl<'a, S: Deserialize<'a> + From<Cow<'a, str>> + AsRef<str>> Textual<'a> for S {}

/// Records read straight into users, each converted as it is read. The first that does
/// not parse or convert fails the whole read, which then goes record by record.
struct Publishable<S>(Vec<User<S>>);

impl<'de, S: Textual<'de>> Deserialize<'de> for Publishable<S> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<S>(std::marker::PhantomData<S>);
        impl<'de, S: Textual<'de>> serde::de::Visitor<'de> for Visitor<S> {
            type Value = Publishable<S>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of Random User records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut records: A,
            ) -> Result<Publishable<S>, A::Error> {
                let mut users = Vec::with_capacity(records.size_hint().unwrap_or(0));
                while let Some(raw) = records.next_element::<RawUser<'de, S>>()? {
                    let user = User::try_from(raw).map_err(|e| serde::de::Error::custom(e.0))?;
                    users.push(user);
                }
                Ok(Publishable(users))
            }
        }
        d.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Info {
    seed: Option<String>,
}

/// A record exactly as the API sends it, its text read as `S`. `login`'s password,
/// salt and hashes are not fields here, so they are dropped by the parser and never
/// held. Text that is only read on the way to the record (dates, coordinates) is
/// borrowed from the page rather than copied.
#[derive(Debug, Deserialize)]
// The derive would also ask `S: Default` for `id`'s default, which is `RawId`'s own.
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct RawUser<'a, S> {
    gender: S,
    name: Name<S>,
    #[serde(borrow)]
    location: RawLocation<'a, S>,
    email: S,
    login: Login<S>,
    #[serde(borrow)]
    dob: RawDated<'a>,
    #[serde(borrow)]
    registered: RawDated<'a>,
    phone: S,
    cell: S,
    #[serde(default)]
    id: RawId<S>,
    picture: Picture<S>,
    nat: S,
}

#[derive(Debug, Deserialize)]
struct RawLocation<'a, S> {
    #[serde(borrow)]
    street: RawStreet<'a, S>,
    city: S,
    state: S,
    country: S,
    #[serde(borrow)]
    postcode: Scalar<'a>,
    #[serde(borrow)]
    coordinates: RawCoordinates<'a>,
    timezone: Timezone<S>,
}

#[derive(Debug, Deserialize)]
struct RawStreet<'a, S> {
    #[serde(borrow)]
    number: Scalar<'a>,
    name: S,
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

/// Either field may be missing (`None`, as serde reads an absent `Option`) or null.
#[derive(Debug, Deserialize)]
struct RawId<S> {
    name: Option<S>,
    value: Option<S>,
}

// Not derived: the derive would ask for `S: Default`, which no `None` needs.
impl<S> Default for RawId<S> {
    fn default() -> Self {
        RawId {
            name: None,
            value: None,
        }
    }
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

impl<'a> Scalar<'a> {
    fn into_text(self) -> Cow<'a, str> {
        match self {
            Scalar::Int(i) => Cow::Owned(i.to_string()),
            Scalar::Float(f) => Cow::Owned(f.to_string()),
            Scalar::Text(s) => s,
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

impl<'a, S: Textual<'a>> TryFrom<RawUser<'a, S>> for User<S> {
    type Error = Invalid;

    fn try_from(raw: RawUser<'a, S>) -> Result<User<S>, Invalid> {
        let uuid = uuid::Uuid::parse_str(raw.login.uuid.as_ref()).map_err(|e| {
            Invalid(format!(
                "login.uuid {:?} is not a UUID: {e}",
                raw.login.uuid.as_ref()
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
                postcode: loc.postcode.into_text().into(),
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
                name: raw.id.name.unwrap_or_else(|| Cow::Borrowed("").into()),
                value: raw.id.value,
            },
            picture: raw.picture,
            nat: raw.nat,
        })
    }
}

/// The uuid as lower-case hyphenated text: the API's own string when it already is
/// (nearly always), without writing it again.
fn canonical<'a, S: Textual<'a>>(uuid: uuid::Uuid, sent: S) -> S {
    let mut buffer = uuid::Uuid::encode_buffer();
    let canonical = uuid.hyphenated().encode_lower(&mut buffer);
    if sent.as_ref() == canonical {
        sent
    } else {
        S::from(Cow::Owned(canonical.to_owned()))
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
