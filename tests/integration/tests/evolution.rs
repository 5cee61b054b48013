//! Schema evolution against the real registry. The consumer reads each record
//! with the writer schema its id names and resolves it to `schemas/user.avsc`,
//! so a record of a newer schema (a field added with a default) or an older one
//! (without a field the reader has a default for) is a row, never poison; and the steps of
//! docs/schema-evolution.md, in its order, keep every record a row.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use domain::User;
use integration::kafka::produce_raw;
use integration::pipeline::Lane;
use integration::registry::{compatible, framed, register, with_nickname};
use integration::Services;

fn fields(value: &mut Value) -> &mut Vec<(String, Value)> {
    match value {
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

/// The same people under fresh uuids: other users, other rows.
fn others(users: &[User]) -> Vec<User> {
    users
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.login.uuid = uuid::Uuid::new_v4().to_string();
            u
        })
        .collect()
}

/// A user's Avro value with the v2 field `nickname` set.
fn nicknamed(mut value: Value, nickname: &str) -> Value {
    let nickname = Value::Union(1, Box::new(Value::String(nickname.into())));
    fields(&mut value).push(("nickname".into(), nickname));
    value
}

fn produce(s: &Services, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
    let borrowed: Vec<(&[u8], &[u8])> = records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    produce_raw(s, topic, &borrowed);
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
    let evolved = others(&users);
    let records: Vec<(Vec<u8>, Vec<u8>)> = evolved
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut value = apache_avro::to_value(user).expect("user as Avro value");
            let bytes = if i % 2 == 0 {
                framed(
                    newer_id,
                    &newer_schema,
                    nicknamed(value, &format!("nick{i}")),
                )
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
    produce(&s, &lane.topic, &records);

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

/// docs/schema-evolution.md on the bed: the registry's compatibility check (the guide's curl),
/// `ALTER TABLE` before the consumer starts, the consumer first, then records of the new schema.
/// The consumer of this build has no `nickname` in its row: the column stays empty, and every
/// record, of either schema, is a row.
#[tokio::test]
async fn the_guides_steps_for_a_new_field_keep_every_record_a_row() {
    let s = Services::from_env();
    let lane = Lane::new("evolveguide");
    let before = lane.publish(&s, 10).await;
    lane.consume(&s, &[]).await;
    let subject = format!("{}-value", lane.topic);

    // 1. The schema: the new field with a default is compatible; a changed type is not.
    let v1: serde_json::Value = serde_json::from_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    let v2 = with_nickname(&v1);
    assert!(
        compatible(&s, &subject, &v2).await,
        "an optional field with a default"
    );
    let mut retyped = v1.clone();
    retyped["fields"]
        .as_array_mut()
        .expect("fields")
        .iter_mut()
        .find(|f| f["name"] == "email")
        .expect("email field")["type"] = "long".into();
    assert!(
        !compatible(&s, &subject, &retyped).await,
        "a field's type changed"
    );

    // 3. The table, before the consumer starts again.
    let session = s.cassandra_session().await;
    session
        .query_unpaged(
            format!(
                "ALTER TABLE {}.created_users ADD nickname text",
                lane.keyspace
            ),
            (),
        )
        .await
        .expect("ALTER TABLE");

    // 5. The consumer first (it starts against the altered table), then the new producer.
    let v2_id = register(&s, &subject, &v2).await;
    let v2_schema = Schema::parse(&v2).expect("v2");
    let after = others(&before);
    let records: Vec<(Vec<u8>, Vec<u8>)> = after
        .iter()
        .map(|user| {
            let value = apache_avro::to_value(user).expect("user as Avro value");
            (
                user.login.uuid.clone().into_bytes(),
                framed(v2_id, &v2_schema, nicknamed(value, "nick")),
            )
        })
        .collect();
    produce(&s, &lane.topic, &records);
    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (10, 0),
        "{out}"
    );

    let rows = lane.rows(&s).await;
    assert_eq!(rows.len(), 20, "every record of either schema is a row");
    let (set,) = session
        .query_unpaged(
            format!(
                "SELECT count(nickname) FROM {}.created_users",
                lane.keyspace
            ),
            (),
        )
        .await
        .expect("count nicknames")
        .into_rows_result()
        .expect("rows")
        .single_row::<(i64,)>()
        .expect("one count");
    assert_eq!(
        set, 0,
        "this build's row has no nickname: the column stays empty"
    );
}
