//! Kafka record → row, with every failure classed as "retry later" (the
//! registry is unreachable) or "poison" (the bytes will never become a row).

use domain::UserRow;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

/// Why a record cannot become a row. Its kind goes into the DLQ headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug)]
pub enum DecodeError {
    Poison(Poison),
    /// The registry did not answer; the same bytes may decode later.
    Retry(String),
}

fn poison(kind: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Poison(Poison {
        kind,
        reason: reason.into(),
    })
}

#[derive(Debug)]
pub struct Decoder {
    avro: AvroDecoder,
}

impl Decoder {
    pub fn new(settings: SrSettings) -> Self {
        Decoder {
            avro: AvroDecoder::new(settings),
        }
    }

    /// Decodes a Confluent-framed Avro `payload` (schemas fetched once per id
    /// and cached) and transforms it into the row to write.
    pub async fn to_row(
        &self,
        payload: Option<&[u8]>,
        timestamp_ms: i64,
    ) -> Result<UserRow, DecodeError> {
        let bytes = payload.ok_or_else(|| poison("framing", "record has no value (tombstone)"))?;
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(poison(
                "framing",
                format!(
                    "not Confluent wire format: expected magic byte 0 and a 4-byte schema id, got {} byte(s) starting {:02x?}",
                    bytes.len(),
                    &bytes[..bytes.len().min(5)]
                ),
            ));
        }
        let schema_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let decoded = match self.avro.decode(Some(bytes)).await {
            Ok(d) => d,
            // The converter retries only 502/503 and caches other failures; any 5xx is the
            // registry's trouble, not the record's, so clear the cache and retry it too.
            Err(e) if !e.retriable && is_server_error(&e.error) => {
                self.avro.remove_errors_from_cache();
                return Err(DecodeError::Retry(format!(
                    "schema registry lookup of id {schema_id} failed: {e}"
                )));
            }
            Err(e) if e.retriable => {
                return Err(DecodeError::Retry(format!(
                    "schema registry lookup of id {schema_id} failed: {e}"
                )))
            }
            Err(e) => {
                // The converter's only datum error; everything else is about the schema id.
                let kind = if e.error.starts_with("Could not transform bytes") {
                    "avro"
                } else {
                    "schema"
                };
                return Err(poison(kind, format!("schema id {schema_id}: {e}")));
            }
        };
        let user = domain::avro::from_value(&decoded.value).map_err(|e| {
            poison(
                "avro",
                format!("schema id {schema_id} does not hold a User record: {e}"),
            )
        })?;
        domain::to_row(&user, timestamp_ms).map_err(|e| poison("transform", e.to_string()))
    }
}

/// Whether the converter's message reports an HTTP 5xx from the registry.
fn is_server_error(message: &str) -> bool {
    message
        .strip_prefix("HTTP request to schema registry failed with status ")
        .is_some_and(|status| status.starts_with('5'))
}

#[cfg(test)]
mod tests {
    use super::is_server_error;

    #[test]
    fn registry_5xx_is_retried_but_4xx_is_the_records_fault() {
        assert!(is_server_error(
            "HTTP request to schema registry failed with status 500 Internal Server Error"
        ));
        assert!(!is_server_error(
            "HTTP request to schema registry failed with status 404 Not Found"
        ));
        assert!(!is_server_error("Could not transform bytes using schema"));
    }
}
