//! Kafka record → row. The record's writer schema is fetched by the id in its
//! Confluent framing (`domain::wire`), once per id (the converter caches it), and resolved to
//! the reader schema in `schemas/user.avsc`, so records written with an older
//! or newer compatible schema still become rows.
//!
//! Every failure comes classed: bytes that can never become a row are poison;
//! a registry that is down is retried; a registry that refuses us, or is not a
//! registry, is fatal (the record is fine, the deployment is not). A schema id the
//! registry does not know is retried for `--unknown-schema-retry` (`unknown_ids`), then
//! poison; fatal if the registry knows no schema of the topic at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fault::Fault;
use common::registry::{Lookup, Registry};
use domain::avro::UserReader;
use domain::UserRow;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

use crate::unknown_ids::{UnknownIds, Verdict};

/// What the decoder needs besides the registry.
#[derive(Debug, Clone)]
pub struct DecodeSettings {
    /// The topic's value subject (`<topic>-value`): if it has no version, an unknown id
    /// means the wrong registry, not a bad record.
    pub subject: String,
    /// How long a schema id the registry does not know is asked again before its records
    /// are poison.
    pub unknown_schema_retry: Duration,
}

#[derive(Debug)]
pub struct Decoder {
    avro: AvroDecoder,
    registry: Registry,
    subject: String,
    /// How to read each writer schema id seen, decided once per id.
    readers: Mutex<HashMap<u32, Arc<UserReader>>>,
    unknown: Mutex<UnknownIds>,
}

impl Decoder {
    pub fn new(sr: SrSettings, registry: Registry, settings: DecodeSettings) -> Self {
        Decoder {
            avro: AvroDecoder::new(sr),
            registry,
            subject: settings.subject,
            readers: Mutex::new(HashMap::new()),
            unknown: Mutex::new(UnknownIds::new(settings.unknown_schema_retry)),
        }
    }

    /// Learns the subject's latest writer schema before the first record, so that the poll
    /// loop decodes (and the writer batches) records from the first fetch on, after a restart
    /// too; otherwise every record of the first fetch waits for the registry in the writer,
    /// one by one. Best effort: a subject not there yet, or a registry that does not answer
    /// now, leaves each schema to be learned from its first record, as any later one is.
    pub async fn prime(&self) {
        let path = format!("/subjects/{}/versions/latest", self.subject);
        let latest = match self.registry.get(&path).await {
            Ok(a) if (200..300).contains(&a.status) => a.body.get("id").and_then(|id| id.as_u64()),
            _ => None,
        };
        let Some(id) = latest.and_then(|id| u32::try_from(id).ok()) else {
            return;
        };
        match self.avro.get_schema(id).await {
            Ok(writer) => {
                self.reader(id, &writer.parsed);
            }
            Err(_) => self.avro.remove_errors_from_cache(),
        }
    }

    fn unknown_ids(&self) -> std::sync::MutexGuard<'_, UnknownIds> {
        self.unknown.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self, schema_id: u32, writer: &apache_avro::Schema) -> Arc<UserReader> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers
            .entry(schema_id)
            .or_insert_with(|| {
                let reader = UserReader::for_writer(writer);
                match reader {
                    UserReader::Ours => {
                        tracing::info!(schema_id, "writer schema is schemas/user.avsc")
                    }
                    UserReader::Resolving(_) => tracing::info!(
                        schema_id,
                        "writer schema differs from schemas/user.avsc: resolving its records to it"
                    ),
                }
                Arc::new(reader)
            })
            .clone()
    }

    /// Decodes a Confluent-framed Avro `payload` and transforms it into the row to write.
    pub async fn to_row(
        &self,
        payload: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> Result<UserRow, Fault> {
        let bytes =
            payload.ok_or_else(|| Fault::poison("framing", "record has no value (tombstone)"))?;
        let Some((schema_id, datum)) = domain::wire::unframe(bytes) else {
            return Err(Fault::poison(
                "framing",
                format!(
                    "not Confluent wire format: expected magic byte 0 and a 4-byte schema id, got {} byte(s) starting {:02x?}",
                    bytes.len(),
                    &bytes[..bytes.len().min(5)]
                ),
            ));
        };
        let writer = match self.avro.get_schema(schema_id).await {
            Ok(schema) => {
                self.unknown_ids().known(schema_id);
                schema
            }
            Err(e) => {
                // The converter keeps a failed lookup until told to forget it: an id unknown
                // now may be registered a moment later, and made-up ids would grow its cache.
                self.avro.remove_errors_from_cache();
                return Err(match self.registry.classify_lookup(schema_id, &e).await {
                    Lookup::Unknown => self.unknown_id(schema_id).await,
                    Lookup::Failed(fault) => fault,
                });
            }
        };
        read_row(
            &self.reader(schema_id, &writer.parsed),
            schema_id,
            datum,
            timestamp_ms,
        )
    }

    /// The fault of a record whose schema id the registry does not know: retry while the id
    /// is waited for; then poison, or fatal if the registry knows no schema of the topic.
    async fn unknown_id(&self, id: u32) -> Fault {
        let verdict = self.unknown_ids().unknown(id, Instant::now());
        let wait = self.unknown_ids().wait();
        let url = self.registry.url();
        if verdict == Verdict::Wait {
            return Fault::retry(
                "schema",
                format!(
                    "schema id {id} is not in the registry at {url} yet; asking again for up \
                     to {wait:?} from its first record (CONSUMER_UNKNOWN_SCHEMA_RETRY)"
                ),
            );
        }
        match self.registry.subject_has_versions(&self.subject).await {
            Ok(true) => Fault::poison(
                "schema",
                format!(
                    "schema id {id} is not in the registry at {url} (asked again for \
                     {wait:?}, CONSUMER_UNKNOWN_SCHEMA_RETRY)"
                ),
            ),
            Ok(false) => Fault::fatal(
                "registry",
                format!(
                    "the schema registry at {url} knows no schema of subject {}, yet records \
                     name schema id {id}: SCHEMA_REGISTRY_URL points at another registry than \
                     the producers' (or this one lost its schemas). Check \
                     SCHEMA_REGISTRY_URL.",
                    self.subject
                ),
            ),
            Err(fault) => fault,
        }
    }

    /// The row of a record whose writer schema was seen before, decoded at once on the
    /// caller's thread (no registry, no await): every record of a schema id already learned.
    /// None for anything else (a new schema id, or a record that is not a row: poison), which
    /// [`Decoder::to_row`] then decodes and classes.
    pub fn known_row(&self, payload: Option<&[u8]>, timestamp_ms: i64) -> Option<UserRow> {
        let (schema_id, datum) = domain::wire::unframe(payload?)?;
        let reader = self
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&schema_id)?
            .clone();
        read_row(&reader, schema_id, datum, timestamp_ms).ok()
    }
}

/// Avro datum → `User` (with the writer schema's reader) → row.
fn read_row(
    reader: &UserReader,
    schema_id: u32,
    datum: &[u8],
    timestamp_ms: i64,
) -> Result<UserRow, Fault> {
    let user = reader.read(datum).map_err(|e| {
        Fault::poison(
            "avro",
            format!(
                "the value does not decode as a User with its writer schema id {schema_id}: {e}"
            ),
        )
    })?;
    domain::to_row(user, timestamp_ms).map_err(|e| Fault::poison("transform", e.to_string()))
}
