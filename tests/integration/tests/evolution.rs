//! Schema evolution against the real registry. The consumer reads each record
//! with the writer schema its id names and resolves it to `schemas/user.avsc`,
//! so a record of a newer schema (a field added with a default) or an older one
//! (without a field the reader has a default for) is a row, never poison.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use domain::User;
use integration::kafka::produce_raw;
use integration::pipeline::Lane;
use integration::registry::{framed, register, with_nickname};
use integration::Services;

fn fields(value: &mut Value) -> &mut Vec<(String, Value)> {
    match value {
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

#[tokio::test]
async fn records_of_a_newer_and_an_older_compatible_schema_become_rows() {
    let s = Services::from_env();
    let lane = Lane::new("evolve");
    // The producer registers schemas/user.avsc (v1) under the topic's subject.
    let users = lane.publish(&s, 10).await;
    let subject = format!("{}-value", lane.topic);

    let v1: serde_json::Value = serde_json::from_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    // v2 adds an optional field; v0 lacks `id.value`, which v1 gives a default.
    let newer = with_nickname(&v1);
    let mut older = v1.clone();
    let id_field = older["fields"]
        .as_array_mut()
        .expect("fields")
        .iter_mut()
        .find(|f| f["name"] == "id")
        .expect("id field");
    id_field["type"]["fields"]
        .as_array_mut()
        .expect("id fields")
        .retain(|f| f["name"] != "value");
    let newer_id = register(&s, &subject, &newer).await;
    let older_id = register(&s, &subject, &older).await;
    let newer_schema = Schema::parse(&newer).expect("newer schema");
    let older_schema = Schema::parse(&older).expect("older schema");

    // Other people (fresh uuids), half written with each schema.
    let evolved: Vec<User> = users
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.login.uuid = uuid::Uuid::new_v4().to_string();
            u
        })
        .collect();
    let records: Vec<(Vec<u8>, Vec<u8>)> = evolved
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut value = apache_avro::to_value(user).expect("user as Avro value");
            let bytes = if i % 2 == 0 {
                let nickname = Value::Union(1, Box::new(Value::String(format!("nick{i}"))));
                fields(&mut value).push(("nickname".into(), nickname));
                framed(newer_id, &newer_schema, value)
            } else {
                let id = fields(&mut value)
                    .iter_mut()
                    .find(|(name, _)| name == "id")
                    .map(|(_, v)| v)
                    .expect("id");
                fields(id).retain(|(name, _)| name != "value");
                framed(older_id, &older_schema, value)
            };
            (user.login.uuid.clone().into_bytes(), bytes)
        })
        .collect();
    let borrowed: Vec<(&[u8], &[u8])> = records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    produce_raw(&s, &lane.topic, &borrowed);

    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (20, 0),
        "{out}"
    );
    let rows: HashMap<String, _> = lane
        .rows(&s)
        .await
        .into_iter()
        .map(|r| (r.id.to_string(), r))
        .collect();
    for user in users.iter().chain(&evolved) {
        let row = &rows[&user.login.uuid];
        assert_eq!(
            (&row.first_name, &row.email, &row.post_code),
            (&user.name.first, &user.email, &user.location.postcode),
            "row of {}",
            user.login.uuid
        );
    }
}
