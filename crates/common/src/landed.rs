//! Where a producer run's records landed: the topic and, per partition, the offsets from the
//! run's first record to one past its last. The producer writes it at the end of a run
//! (`--landed-file`); `consumer await-run` reads it to tell when the consumer group has
//! committed past them, and which dead letters came from this run.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landed {
    pub topic: String,
    /// Records the broker acknowledged.
    pub published: u64,
    /// When the run started (Unix ms): none of its records carries an earlier timestamp.
    pub started_ms: i64,
    pub partitions: Vec<Span>,
}

/// Offsets `first..end` of one partition. Other producers' records may lie in between: the
/// span is where this run's records are, not how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub partition: i32,
    pub first: i64,
    pub end: i64,
}

impl Span {
    pub fn contains(&self, offset: i64) -> bool {
        (self.first..self.end).contains(&offset)
    }
}

impl Landed {
    pub fn parse(json: &str) -> Result<Landed> {
        serde_json::from_str(json.trim()).context(
            "not the JSON that `producer --landed-file` writes \
             ({\"topic\":…,\"published\":…,\"started_ms\":…,\"partitions\":[…]})",
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// The span of `partition`, if the run wrote to it.
    pub fn span(&self, partition: i32) -> Option<&Span> {
        self.partitions.iter().find(|s| s.partition == partition)
    }

    /// Offsets of the spans (`end - first`, summed).
    pub fn offsets(&self) -> i64 {
        self.partitions.iter().map(|s| s.end - s.first).sum()
    }
}

/// Collects delivered offsets into spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans(BTreeMap<i32, (i64, i64)>);

impl Spans {
    pub fn add(&mut self, partition: i32, offset: i64) {
        let span = self.0.entry(partition).or_insert((offset, offset + 1));
        span.0 = span.0.min(offset);
        span.1 = span.1.max(offset + 1);
    }

    pub fn into_landed(self, topic: &str, published: u64, started_ms: i64) -> Landed {
        Landed {
            topic: topic.to_string(),
            published,
            started_ms,
            partitions: self
                .0
                .into_iter()
                .map(|(partition, (first, end))| Span {
                    partition,
                    first,
                    end,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_delivered_offsets_in_any_order_and_round_trip_as_json() {
        let mut spans = Spans::default();
        for (p, o) in [(1, 7), (0, 3), (1, 5), (0, 4), (1, 6)] {
            spans.add(p, o);
        }
        let landed = spans.into_landed("users", 5, 1_700_000_000_000);
        assert_eq!(
            landed.partitions,
            [
                Span {
                    partition: 0,
                    first: 3,
                    end: 5
                },
                Span {
                    partition: 1,
                    first: 5,
                    end: 8
                }
            ]
        );
        assert_eq!(landed.offsets(), 5);
        assert!(landed.span(1).unwrap().contains(7) && !landed.span(1).unwrap().contains(8));
        assert_eq!(Landed::parse(&landed.to_json()).unwrap(), landed);
        let err = Landed::parse("summary: published=5").unwrap_err();
        assert!(
            format!("{err:#}").contains("producer --landed-file"),
            "{err:#}"
        );
    }
}
