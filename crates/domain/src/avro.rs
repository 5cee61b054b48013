//! The Avro side of [`User`]: the checked-in schema and conversions between the
//! struct and Avro values: the bare datum. The framing around it (magic byte, schema id) is
//! [`crate::wire`].

use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use crate::user::User;

/// `schemas/user.avsc`, as registered in the Schema Registry (docs included).
pub const SCHEMA_JSON: &str = include_str!("../../../schemas/user.avsc");

/// Full name of the record, for record-name subject strategies and logs.
pub const FULL_NAME: &str = "io.userpipeline.v1.User";

/// The parsed schema. Panics only if the checked-in `.avsc` is invalid, which
/// the unit tests rule out.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(SCHEMA_JSON).expect("schemas/user.avsc is valid Avro"))
}

/// Encodes `user` as a bare Avro datum (no registry framing).
pub fn to_datum(user: &User) -> Result<Vec<u8>, apache_avro::Error> {
    let mut datum = Vec::new();
    write_datum(user, &mut datum)?;
    Ok(datum)
}

/// Appends `user`'s bare Avro datum to `out`: serialized straight from the struct
/// by a writer built once (no value tree, no per-record schema work). Its text may be
/// `String`s or borrowed: the datum is the same.
pub fn write_datum<S: serde::Serialize>(
    user: &User<S>,
    out: &mut Vec<u8>,
) -> Result<usize, apache_avro::Error> {
    static WRITER: OnceLock<GenericDatumWriter<'static>> = OnceLock::new();
    WRITER
        .get_or_init(|| {
            GenericDatumWriter::builder(schema())
                .build()
                .expect("schemas/user.avsc resolves")
        })
        .write_ser(out, user)
}

/// Reads a bare Avro datum written with `writer` into a [`User`], resolving it
/// against our schema (the usual reader/writer schema resolution).
pub fn from_datum(writer: &Schema, mut datum: &[u8]) -> Result<User, apache_avro::Error> {
    let value = GenericDatumReader::builder(writer)
        .reader_schema(schema())
        .build()?
        .read_value(&mut datum)?;
    from_value(&value)
}

/// Reads datums written with one writer schema as [`User`]s. A writer schema
/// that is ours (the same Parsing Canonical Form: the same bytes on the
/// wire) deserializes straight into the struct, with no value tree in
/// between; any other goes through Avro schema resolution ([`from_datum`]).
#[derive(Debug, Clone)]
pub enum UserReader {
    Ours,
    Resolving(Schema),
}

impl UserReader {
    pub fn for_writer(writer: &Schema) -> UserReader {
        if writer.canonical_form() == schema().canonical_form() {
            UserReader::Ours
        } else {
            UserReader::Resolving(writer.clone())
        }
    }

    pub fn read(&self, mut datum: &[u8]) -> Result<User, apache_avro::Error> {
        match self {
            UserReader::Ours => ours().read_deser(&mut datum),
            UserReader::Resolving(writer) => from_datum(writer, datum),
        }
    }
}

/// The reader of our own schema, built (and its names resolved) once.
fn ours() -> &'static GenericDatumReader<'static> {
    static READER: OnceLock<GenericDatumReader<'static>> = OnceLock::new();
    READER.get_or_init(|| {
        GenericDatumReader::builder(schema())
            .build()
            .expect("schemas/user.avsc resolves")
    })
}

/// Converts a decoded Avro value (e.g. from the registry-aware decoder) into a [`User`].
pub fn from_value(value: &Value) -> Result<User, apache_avro::Error> {
    apache_avro::from_value(value)
}

#[cfg(test)]
mod tests;
