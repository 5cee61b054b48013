//! Writes are ordered by the record, not by the clock: each row is written with its Kafka
//! record's timestamp, so an older version of a user that is written after a newer one (a
//! replay, a fenced replica's late write, a producer that resent it) cannot undo the newer.

use apache_avro::Schema;
use integration::kafka::produce_at;
use integration::pipeline::Lane;
use integration::registry::{framed, register};
use integration::Services;

#[tokio::test]
async fn an_older_version_written_after_a_newer_one_leaves_the_newer_row() {
    let s = Services::from_env();
    let lane = Lane::new("writeorder");
    // The producer registers schemas/user.avsc under the topic's subject; one user to vary.
    let user = lane.publish(&s, 1).await.remove(0);
    let v1: serde_json::Value = serde_json::from_str(domain::avro::SCHEMA_JSON).expect("user.avsc");
    let id = register(&s, &format!("{}-value", lane.topic), &v1).await;
    let schema = Schema::parse(&v1).expect("user.avsc parses");

    let mut newer = user.clone();
    newer.login.uuid = uuid::Uuid::new_v4().to_string();
    newer.name.first = "Newer".into();
    let mut older = newer.clone();
    older.name.first = "Older".into();
    let record =
        |u: &domain::User| framed(id, &schema, apache_avro::to_value(u).expect("user as Avro"));
    let (newer_value, older_value) = (record(&newer), record(&older));
    let key = newer.login.uuid.as_bytes();
    let now = chrono::Utc::now().timestamp_millis();
    // The newer version first on the partition, the older (a minute older) after it: read in
    // order, the older is written last.
    produce_at(
        &s,
        &lane.topic,
        &[(key, &newer_value, now), (key, &older_value, now - 60_000)],
    );

    let out = lane.consume(&s, &[]).await;
    assert_eq!(
        (out.summary("written"), out.summary("dead_lettered")),
        (3, 0),
        "{out}"
    );
    let row = lane
        .rows(&s)
        .await
        .into_iter()
        .find(|r| r.id.to_string() == newer.login.uuid)
        .expect("the user's row");
    assert_eq!(
        row.first_name, "Newer",
        "the older version overwrote the newer"
    );
}
