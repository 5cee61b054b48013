use domain::row::TimedRow;
use domain::{Timestamp, UserRow};
use rdkafka::message::{OwnedMessage, Timestamp as KafkaTime};

use super::{jobs, Batching, Job};
use crate::offsets::Slot;
use crate::pipeline::work::Work;

fn row(id: u128) -> UserRow {
    let text = || "x".repeat(10);
    UserRow {
        id: uuid::Uuid::from_u128(id),
        first_name: text(),
        last_name: text(),
        title: text(),
        gender: text(),
        address: text(),
        city: text(),
        state: text(),
        country: text(),
        post_code: text(),
        latitude: 0.0,
        longitude: 0.0,
        email: text(),
        username: text(),
        phone: text(),
        cell: text(),
        dob: Timestamp(0),
        registered_date: Timestamp(0),
        picture: text(),
        nationality: text(),
        produced_at: Timestamp(0),
    }
}

/// Record `offset` of partition 0; decoded (its row keyed `key`) unless `key` is None.
fn item(offset: i64, key: Option<u128>) -> (Slot, Work) {
    let message = OwnedMessage::new(
        None,
        None,
        "t".into(),
        KafkaTime::NotAvailable,
        0,
        offset,
        None,
    );
    let row = key.map(|k| TimedRow {
        row: row(k << 64 | offset as u128),
        write_time: offset,
    });
    (Slot::of(0, offset), Work { message, row })
}

/// The replica set of a row in these tests: its id's high bits.
fn replicas(row: &TimedRow) -> u128 {
    row.row.id.as_u128() >> 64
}

/// Each job as the offsets it holds, sorted for comparison.
fn shape(jobs: Vec<Job>) -> Vec<Vec<i64>> {
    let mut out: Vec<Vec<i64>> = jobs
        .into_iter()
        .map(|job| match job {
            Job::One(slot, _) => vec![slot.offset],
            Job::Batch(items) => items.iter().map(|(slot, _)| slot.offset).collect(),
        })
        .collect();
    out.sort();
    out
}

const ROOMY: Batching = Batching {
    max_rows: 16,
    max_bytes: 1 << 20,
};

#[test]
fn rows_sharing_their_replicas_go_in_one_batch_and_the_others_alone() {
    let taken = [
        item(0, Some(1)),
        item(1, Some(2)),
        item(2, Some(1)),
        item(3, Some(1)),
    ];
    assert_eq!(
        shape(jobs(taken.into_iter(), &ROOMY, replicas)),
        vec![vec![0, 2, 3], vec![1]]
    );
}

#[test]
fn a_record_still_to_decode_is_never_batched() {
    let taken = [item(0, Some(1)), item(1, None), item(2, Some(1))];
    assert_eq!(
        shape(jobs(taken.into_iter(), &ROOMY, replicas)),
        vec![vec![0, 2], vec![1]]
    );
}

#[test]
fn a_batch_holds_at_most_its_rows_and_its_bytes() {
    let taken = (0..5).map(|o| item(o, Some(1)));
    let two = Batching {
        max_rows: 2,
        max_bytes: 1 << 20,
    };
    assert_eq!(
        shape(jobs(taken, &two, replicas)),
        vec![vec![0, 1], vec![2, 3], vec![4]]
    );
    let size = row(0).size();
    let three_rows_of_bytes = Batching {
        max_rows: 16,
        max_bytes: 3 * size,
    };
    let taken = (0..7).map(|o| item(o, Some(1)));
    assert_eq!(
        shape(jobs(taken, &three_rows_of_bytes, replicas)),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
}

#[test]
fn one_row_per_batch_turns_batching_off() {
    let off = Batching {
        max_rows: 1,
        max_bytes: 1 << 20,
    };
    let taken = (0..3).map(|o| item(o, Some(1)));
    assert_eq!(
        shape(jobs(taken, &off, replicas)),
        vec![vec![0], vec![1], vec![2]]
    );
}
