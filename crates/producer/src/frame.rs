//! Users as Kafka records: the key (`login.uuid`) and the value in the registry's wire
//! format (`domain::wire`: the framing, then the Avro datum), a page's worth in one buffer.
//!
//! A page is framed on the thread that parsed it, and its users are dropped there: their
//! text is borrowed from the page (only strings with JSON escapes are copies, freed by the
//! thread that made them), and only one buffer per page crosses to the publisher. Freeing
//! another thread's allocations, user by user, cost the producer more CPU than parsing.

use domain::{ApiPage, Rejected, User};
use serde::Serialize;

/// One page of the API, ready to hand to Kafka.
#[derive(Debug, Default)]
pub struct FramedPage {
    pub records: Records,
    /// Records of the page that were not publishable users, with the reason.
    pub rejected: Vec<Rejected>,
}

impl FramedPage {
    pub fn new<S: Serialize + AsRef<str>>(page: ApiPage<S>, schema_id: u32) -> FramedPage {
        FramedPage {
            records: Records::frame(&page.users, schema_id),
            rejected: page.rejected,
        }
    }

    /// Every record the API sent in the page: publishable or not.
    pub fn fetched(&self) -> usize {
        self.records.len() + self.records.unencodable.len() + self.rejected.len()
    }
}

/// Framed records back to back, and where each one's key and value are.
#[derive(Debug, Default)]
pub struct Records {
    bytes: Vec<u8>,
    /// Per record: the key's start, the value's start (the key's end), the value's end.
    bounds: Vec<(usize, usize, usize)>,
    /// Why each user that could not be encoded could not be.
    pub unencodable: Vec<String>,
}

impl Records {
    pub fn frame<S: Serialize + AsRef<str>>(users: &[User<S>], schema_id: u32) -> Records {
        let mut records = Records {
            bytes: Vec::with_capacity(users.len() * 512),
            bounds: Vec::with_capacity(users.len()),
            unencodable: Vec::new(),
        };
        for user in users {
            records.push(user, schema_id);
        }
        records
    }

    fn push<S: Serialize + AsRef<str>>(&mut self, user: &User<S>, schema_id: u32) {
        let start = self.bytes.len();
        self.bytes
            .extend_from_slice(user.login.uuid.as_ref().as_bytes());
        let value = self.bytes.len();
        domain::wire::write_header(schema_id, &mut self.bytes);
        match domain::avro::write_datum(user, &mut self.bytes) {
            Ok(_) => self.bounds.push((start, value, self.bytes.len())),
            Err(e) => {
                self.bytes.truncate(start);
                self.unencodable.push(format!(
                    "could not encode user {} as Avro: {e}",
                    user.login.uuid.as_ref()
                ));
            }
        }
    }

    /// Records framed (the users that could be encoded).
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Each record's key and value, in the page's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.bounds
            .iter()
            .map(|&(key, value, end)| (&self.bytes[key..value], &self.bytes[value..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_is_its_uuid_and_its_framed_datum() {
        let page = include_bytes!("../../../tests/fixtures/randomuser/quirks.json");
        let users = ApiPage::parse(page).expect("the quirks page parses").users;
        let records = Records::frame(&users, 7);
        assert_eq!(records.len(), users.len());
        assert!(records.unencodable.is_empty());
        for ((key, value), user) in records.iter().zip(&users) {
            assert_eq!(key, user.login.uuid.as_bytes());
            let datum = domain::avro::to_datum(user).expect("encodes");
            assert_eq!(domain::wire::unframe(value), Some((7, &datum[..])));
        }
        // What the producer frames: the same users, their text borrowed from the page.
        let borrowed = ApiPage::parse_borrowed(page).expect("the quirks page parses");
        let framed = Records::frame(&borrowed.users, 7);
        assert!(framed.iter().eq(records.iter()), "the same records");
    }
}
