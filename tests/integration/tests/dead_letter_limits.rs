//! A dead letter that could never be sent must not wedge its partition: a poison record
//! close to the topic's size limit is dead-lettered cut to fit, with headers that say so,
//! and the group's committed offsets reach the end of the topic.

use std::time::{Duration, Instant};

use integration::kafka::{
    committed, create_topic, create_topic_with, header, produce_raw_with, read_topic, record_count,
    topic_setting,
};
use integration::pipeline::{Lane, LIMIT};
use integration::{bins, Services};

use rdkafka::Message;

/// What the user wrote: a value under the broker's limit (1 048 588 bytes by
/// default), over the producer's (1 000 000) once the reason headers are added.
const BIG: usize = 1_040_000;
/// The source topic's own limit, which the dead-letter topic the consumer creates copies.
const TOPIC_LIMIT: &str = "2097152";

#[tokio::test]
async fn a_poison_record_of_a_mebibyte_is_dead_lettered_cut_to_fit_and_its_partition_moves_on() {
    let s = Services::from_env();
    let lane = Lane::new("bigpoison");
    create_topic_with(&s, &lane.topic, 3, &[("max.message.bytes", TOPIC_LIMIT)]).await;
    let users = lane.publish(&s, 50).await;
    let big: Vec<u8> = (0..BIG).map(|i| b'a' + (i % 26) as u8).collect();
    produce_raw_with(
        &s,
        &lane.topic,
        &[(b"big", &big)],
        &[("message.max.bytes", "2000000")],
    );
    let more = lane.publish(&s, 50).await;
    let end = record_count(&s, &lane.topic);
    assert_eq!(end, 101);

    let child = lane.consumer(&s, &[]).spawn().expect("spawn consumer");
    // Every good user written and every offset committed (auto-commit, every second),
    // the big record's too: nothing behind it is held.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (rows, done) = (
            lane.count(&s).await,
            committed(&s, &lane.group, &lane.topic),
        );
        if rows == 100 && done == end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 120 s: {rows} of 100 rows, {done} of {end} offsets committed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bins::terminate(&child);
    let out = bins::finish(child, LIMIT).await;
    assert!(out.success, "{out}");
    assert_eq!(
        (
            out.summary("written"),
            out.summary("dead_lettered"),
            out.summary("dead_letters_refused")
        ),
        (100, 1, 0),
        "{out}"
    );
    let rows = lane.rows(&s).await;
    let published: std::collections::HashSet<String> = users
        .iter()
        .chain(&more)
        .map(|u| u.login.uuid.clone())
        .collect();
    assert!(rows.iter().all(|r| published.contains(&r.id.to_string())));

    let dead = read_topic(&s, &lane.dlq, 1, Duration::from_secs(20));
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    eprintln!(
        "dead letter: {} of {BIG} bytes; {}",
        letter.payload().map_or(0, <[u8]>::len),
        out.stdout.trim()
    );
    assert_eq!(letter.key(), Some(&b"big"[..]));
    let cut = letter.payload().expect("a value");
    assert!(
        cut.len() < 1_000_000 && cut.len() > 990_000,
        "cut to fit the producer's 1 000 000 bytes, no more: {}",
        cut.len()
    );
    assert_eq!(cut, &big[..cut.len()], "the start of the original value");
    assert_eq!(header(letter, "dlq.value.truncated"), "true");
    assert_eq!(header(letter, "dlq.value.original.size"), BIG.to_string());
    assert_eq!(header(letter, "dlq.error.kind"), "framing");
    assert!(header(letter, "dlq.error").contains("not Confluent wire format"));
    assert_eq!(
        topic_setting(&s, &lane.dlq, "max.message.bytes").await,
        Some(TOPIC_LIMIT.to_string()),
        "the dead-letter topic takes what its source topic takes"
    );
}

#[tokio::test]
async fn a_dead_letter_the_dlq_refuses_for_good_leaves_a_marker_and_its_partition_moves_on() {
    let s = Services::from_env();
    let lane = Lane::new("refused");
    create_topic(&s, &lane.topic, 1).await;
    // A key cannot be cut: alone it is over the dead-letter producer's 1 000 000 bytes.
    let key = vec![b'k'; BIG];
    let poison = (&key[..], &b"not avro"[..]);
    let end = poison_between_users(&s, &lane, poison, &[("message.max.bytes", "2000000")]).await;
    let parts = [
        "MessageSizeTooLarge",
        "max.message.bytes",
        "A marker without its bytes",
    ];
    moved_on(&s, &lane, end, (40, 1, 1), &parts).await;
    // The marker: where the record is and why, none of its bytes.
    let dead = read_topic(&s, &lane.dlq, 1, Duration::from_secs(20));
    assert_eq!(dead.len(), 1);
    let marker = &dead[0];
    assert_eq!(marker.payload(), None);
    assert_eq!(
        marker.key(),
        Some(format!("{}/0@20", lane.topic).as_bytes())
    );
    assert_eq!(header(marker, "dlq.value.dropped"), "true");
    assert_eq!(header(marker, "dlq.source.offset"), "20");
    assert!(header(marker, "dlq.error").contains("not Confluent wire format"));
    assert!(header(marker, "dlq.refused").contains("MessageSizeTooLarge"));
}

#[tokio::test]
async fn a_dead_letter_whose_marker_is_refused_too_is_reported_and_its_partition_moves_on() {
    let s = Services::from_env();
    let lane = Lane::new("markerrefused");
    create_topic(&s, &lane.topic, 1).await;
    // A dead-letter topic that takes no record this consumer can write: not even a marker
    // (its headers alone are several hundred bytes).
    create_topic_with(&s, &lane.dlq, 1, &[("max.message.bytes", "200")]).await;
    let end = poison_between_users(&s, &lane, (b"small", b"not avro"), &[]).await;
    moved_on(&s, &lane, end, (40, 0, 1), &["was refused too"]).await;
    assert_eq!(record_count(&s, &lane.dlq), 0);
}

/// 20 users, one record that is not Avro at offset 20, 20 more, on `lane`'s one partition
/// (`settings` for the producer that writes the poison). Returns the topic's end offset.
async fn poison_between_users(
    s: &Services,
    lane: &Lane,
    poison: (&[u8], &[u8]),
    settings: &[(&str, &str)],
) -> i64 {
    lane.publish(s, 20).await;
    produce_raw_with(s, &lane.topic, &[poison], settings);
    lane.publish(s, 20).await;
    record_count(s, &lane.topic)
}

/// Runs the consumer over `lane` until idle: its summary counts (written, dead-lettered, dead
/// letters refused) are `counts`, one error line names the poison record with its reason and
/// `parts`, and the group's committed offset reached `end`.
async fn moved_on(s: &Services, lane: &Lane, end: i64, counts: (u64, u64, u64), parts: &[&str]) {
    let out = lane.consume(s, &[]).await;
    assert_eq!(
        (
            out.summary("written"),
            out.summary("dead_lettered"),
            out.summary("dead_letters_refused")
        ),
        counts,
        "{out}"
    );
    // Logs go to stderr.
    let said = out
        .stderr
        .lines()
        .find(|l| l.contains("skipped: it is poison"))
        .unwrap_or_else(|| panic!("no line reports the refused dead letter: {out}"));
    eprintln!("{said}");
    let at = format!("record {}/0@20", lane.topic);
    for part in [at.as_str(), "not Confluent wire format"]
        .iter()
        .chain(parts)
    {
        assert!(said.contains(part), "{part} in {said}");
    }
    assert_eq!(
        committed(s, &lane.group, &lane.topic),
        end,
        "its offset moved on"
    );
}
