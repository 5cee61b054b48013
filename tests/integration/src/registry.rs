//! Registering schemas and framing records as a Confluent serializer would,
//! for tests that write what the producer would not (other schema versions).

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde_json::json;

use crate::Services;

pub async fn register(s: &Services, subject: &str, schema: &serde_json::Value) -> u32 {
    let body = post(s, &format!("subjects/{subject}/versions"), schema).await;
    body["id"].as_u64().expect("schema id") as u32
}

/// POSTs `schema` to the registry's `path`; returns the JSON answer of a success.
async fn post(s: &Services, path: &str, schema: &serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!("{}/{path}", s.registry))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .body(json!({ "schema": schema.to_string() }).to_string())
        .send()
        .await
        .expect("ask the registry");
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("registry JSON");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// The registry's answer to "may `schema` follow the latest version of `subject`?" (the
/// compatibility check docs/schema-evolution.md runs with curl).
pub async fn compatible(s: &Services, subject: &str, schema: &serde_json::Value) -> bool {
    let path = format!("compatibility/subjects/{subject}/versions/latest");
    let body = post(s, &path, schema).await;
    body["is_compatible"].as_bool().expect("is_compatible")
}

/// Whether the registry has a schema with this id.
pub async fn schema_exists(s: &Services, id: u32) -> bool {
    reqwest::Client::new()
        .get(format!("{}/schemas/ids/{id}", s.registry))
        .send()
        .await
        .expect("ask the registry")
        .status()
        .is_success()
}

/// Confluent framing around a datum written with `schema`.
pub fn framed(id: u32, schema: &Schema, value: Value) -> Vec<u8> {
    let datum = GenericDatumWriter::builder(schema)
        .build()
        .expect("writer")
        .write_value_to_vec(value)
        .expect("datum of the writer schema");
    domain::wire::frame(id, &datum)
}

/// `schema` (a record) with an optional `nickname` added: a compatible evolution.
pub fn with_nickname(schema: &serde_json::Value) -> serde_json::Value {
    let mut newer = schema.clone();
    newer["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": "nickname", "type": ["null", "string"], "default": null}));
    newer
}
