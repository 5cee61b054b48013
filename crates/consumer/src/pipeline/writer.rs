//! The writer: decode → transform → write, retrying transient failures for as long as they
//! last, dead-lettering poison, and freeing the record's slot when it is done. Every record in
//! flight is a future in one `FuturesUnordered`, polled by this one task, rather than a task
//! of its own (a task per row cost an allocation and a trip through the scheduler each). A
//! task apart from the poll loop, because a revoke waits for these rows inside that loop's
//! `recv`.
//!
//! A retry ends early when the run stops (a signal or a fatal fault) or the record's
//! partition is revoked or lost: the record is then re-delivered, after a restart or to the
//! partition's next owner, and holding it here would only hold memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::fault::{Class, Fault, Lasting};
use domain::row::TimedRow;
use futures::future::Either;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::mpsc::UnboundedReceiver;

use super::batch::{jobs, Batching, Job};
use super::halt::Halt;
use super::in_flight::{InFlight, Slot};
use super::work::{produced_ms, timed, Work};
use crate::decode::Decoder;
use crate::dlq::DeadLetters;
use crate::metrics::Metrics;
use crate::sink::Sink;

#[derive(Debug)]
pub struct Writer {
    pub decoder: Arc<Decoder>,
    pub sink: Arc<Sink>,
    pub dlq: DeadLetters,
    pub backoff: Backoff,
    /// How long a write Cassandra refuses with a code that may pass (see
    /// `common::fault::cassandra::write_verdict`) is retried before it is blamed.
    pub refusal_retry: Duration,
    pub in_flight: Arc<InFlight>,
    pub halt: Arc<Halt>,
    pub metrics: Arc<Metrics>,
    /// How rows ready together are grouped into batches (off: one row per request).
    pub batching: Batching,
}

/// Why a record's work ended without it being written or dead-lettered.
#[derive(Debug)]
pub(super) enum GaveUp {
    /// A fatal fault: the run stops for it.
    Fatal(Fault),
    /// The run is stopping, or the record's partition is no longer ours: it is re-delivered.
    Dropped,
}

impl Writer {
    /// Writes every record the poll loop sends until the channel closes. What arrives
    /// together is written together: rows that share their replicas go out in one batch,
    /// and nothing waits for a batch to fill (one row on its own goes at once).
    pub async fn run(self, mut records: UnboundedReceiver<Vec<(Slot, Work)>>) {
        let mut writing = FuturesUnordered::new();
        let mut taken = Vec::with_capacity(8);
        loop {
            tokio::select! {
                // Finishing rows first frees their slots before taking more.
                biased;
                Some(()) = writing.next(), if !writing.is_empty() => {}
                count = records.recv_many(&mut taken, 8) => {
                    if count == 0 {
                        break;
                    }
                    let cluster = self.sink.cluster();
                    let replicas = |row: &TimedRow| self.sink.replicas(&cluster, row);
                    let ready = taken.drain(..).flatten();
                    for job in jobs(ready, &self.batching, replicas) {
                        writing.push(match job {
                            Job::One(slot, work) => Either::Left(self.process(slot, work)),
                            Job::Batch(items) => Either::Right(self.process_batch(items)),
                        });
                    }
                }
            }
        }
        while writing.next().await.is_some() {}
    }

    /// One record, start to finish: written, dead-lettered, or given up (its offset is then
    /// never committed by this run).
    pub(super) async fn process(&self, slot: Slot, work: Work) {
        let done = match &work.row {
            Some(row) => self.write_row(slot, &work.message, row).await,
            // Boxed: rare, and its registry lookup would otherwise make every record's future
            // (copied whole into the writer's set) that much bigger.
            None => Box::pin(self.handle(slot, &work.message)).await,
        };
        match done {
            Ok(()) => self.in_flight.finish(slot),
            Err(GaveUp::Dropped) => self.in_flight.abandon(slot),
            Err(GaveUp::Fatal(fault)) => {
                self.in_flight.abandon(slot);
                self.halt.raise(fault);
            }
        }
    }

    /// Writes `row` (of `message`), retrying transient failures for as long as they last;
    /// dead-letters it if Cassandra refuses this row for good.
    async fn write_row(
        &self,
        slot: Slot,
        message: &OwnedMessage,
        row: &TimedRow,
    ) -> Result<(), GaveUp> {
        let mut backoff = self.backoff.clone();
        let mut refused_since = None;
        loop {
            let begun = Instant::now();
            // Boxed: the driver's request future is several KB, and inline it would make every
            // record's future that size, copied whole into the writer's set.
            match Box::pin(self.sink.write(row)).await {
                Ok(()) => {
                    self.metrics.write_request();
                    self.metrics.written(begun.elapsed(), since_produced(row));
                    return Ok(());
                }
                Err(f) if f.class == Class::Retry => {
                    if let Some(lasting) = f.lasting {
                        let since = *refused_since.get_or_insert(begun);
                        let verdict = self.refusal_verdict(lasting, since, backoff.attempts(), &f);
                        match verdict.await {
                            Some(poison) if poison.class == Class::Poison => {
                                return self.dead_letter(slot, message, &poison).await
                            }
                            Some(fatal) => return Err(GaveUp::Fatal(fatal)),
                            None => {}
                        }
                    }
                    self.retry_after(slot, "cassandra", &mut backoff, &f)
                        .await?
                }
                Err(f) if f.class == Class::Poison => {
                    return self.dead_letter(slot, message, &f).await
                }
                Err(f) => return Err(GaveUp::Fatal(f)),
            }
        }
    }

    /// What a refusal that may pass is, once it is known: poison when the row is the
    /// problem, fatal when it lasted `refusal_retry`, None while it may still pass.
    async fn refusal_verdict(
        &self,
        lasting: Lasting,
        since: Instant,
        retries: u32,
        fault: &Fault,
    ) -> Option<Fault> {
        // One retry first: a node restarting or a schema change spreading passes in moments.
        if retries > 0 {
            let (its_own, why) = match lasting {
                Lasting::Fatal => (false, ""),
                Lasting::RecordIfOthersPass => (
                    self.sink.written_since(since),
                    "other rows are written meanwhile",
                ),
                Lasting::RecordIfSchemaSettled => (
                    self.sink.schema_settled().await,
                    "every node agrees on the table's schema",
                ),
            };
            if its_own {
                return Some(Fault::poison(
                    "cassandra",
                    format!("Cassandra refuses this row ({why}): {}", fault.message),
                ));
            }
        }
        (since.elapsed() >= self.refusal_retry).then(|| {
            Fault::fatal(
                "cassandra",
                format!(
                    "Cassandra refused writes for {:?} (CONSUMER_REFUSED_WRITE_RETRY): {} Check \
                     the role's permissions, the table (schemas/cassandra.cql) and the nodes' logs.",
                    self.refusal_retry, fault.message
                ),
            )
        })
    }

    /// Decodes `message` (asking the registry for its writer schema) and writes it, or
    /// dead-letters it if it is poison, retrying transient failures for as long as they last.
    async fn handle(&self, slot: Slot, message: &OwnedMessage) -> Result<(), GaveUp> {
        let mut backoff = self.backoff.clone();
        let produced_ms = produced_ms(message);
        let decoded = loop {
            match self.decoder.to_row(message.payload(), produced_ms).await {
                Ok(row) => break Ok(timed(row, produced_ms)),
                Err(f) if f.class == Class::Poison => break Err(f),
                Err(f) if f.class == Class::Retry => {
                    self.retry_after(slot, "registry", &mut backoff, &f).await?
                }
                Err(f) => return Err(GaveUp::Fatal(f)),
            }
        };
        match decoded {
            Ok(row) => self.write_row(slot, message, &row).await,
            Err(poison) => self.dead_letter(slot, message, &poison).await,
        }
    }

    /// Parks a poison record in the dead-letter topic, retrying transient failures. A
    /// dead letter the DLQ refuses for good is reported and replaced by a marker (where the
    /// record is and why, without its bytes); one refused too is reported and skipped:
    /// retried, either would hold its partition's offset for ever.
    async fn dead_letter(
        &self,
        slot: Slot,
        message: &OwnedMessage,
        poison: &Fault,
    ) -> Result<(), GaveUp> {
        let mut backoff = self.backoff.clone();
        let at = (message.topic(), message.partition(), message.offset());
        let mut refused: Option<String> = None;
        loop {
            let sent = match &refused {
                None => self.dlq.send(message, poison).await,
                Some(refusal) => self.dlq.send_marker(message, poison, refusal).await,
            };
            match sent {
                Ok(()) => {
                    if let Some(refusal) = &refused {
                        self.metrics.dead_letter_refused(at, poison, refusal, true);
                    }
                    self.metrics
                        .dead_lettered(poison, message.partition(), message.offset());
                    return Ok(());
                }
                Err(e) if common::fault::kafka::record_refused(&e) => match &refused {
                    None => refused = Some(self.dlq.refusal(&e)),
                    Some(refusal) => {
                        self.metrics.dead_letter_refused(at, poison, refusal, false);
                        return Ok(());
                    }
                },
                Err(e) => {
                    let class = common::fault::kafka::error_class(&e);
                    let fault = Fault::new(
                        class,
                        "dlq",
                        format!(
                            "could not write to the dead-letter topic {}: {e}{}",
                            self.dlq.topic(),
                            if class == Class::Fatal {
                                ". Check that the consumer may write to it (KAFKA_DLQ_TOPIC)"
                            } else {
                                ""
                            }
                        ),
                    );
                    if class == Class::Fatal {
                        return Err(GaveUp::Fatal(fault));
                    }
                    self.retry_after(slot, "dlq", &mut backoff, &fault).await?
                }
            }
        }
    }

    /// Waits out a transient failure before the next attempt. Gives up at once when the
    /// run stops or the record's partition is revoked or lost meanwhile.
    async fn retry_after(
        &self,
        slot: Slot,
        what: &'static str,
        backoff: &mut Backoff,
        fault: &Fault,
    ) -> Result<(), GaveUp> {
        self.wait_to_retry(what, backoff, fault, || self.in_flight.is_current(slot))
            .await
    }

    /// The same for work whose records are all `current` (a batch: every one of its rows'
    /// partitions still ours).
    pub(super) async fn wait_to_retry(
        &self,
        what: &'static str,
        backoff: &mut Backoff,
        fault: &Fault,
        current: impl Fn() -> bool,
    ) -> Result<(), GaveUp> {
        self.metrics
            .retry(what, backoff.attempts() + 1, &fault.message);
        let revoked = self.in_flight.revoked();
        tokio::pin!(revoked);
        // Registered before the check below, so a revoke in between still wakes us.
        revoked.as_mut().enable();
        if current() {
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = self.halt.raised() => {}
                _ = revoked => {}
            }
        }
        if let Some(f) = self.halt.fault() {
            return Err(GaveUp::Fatal(f.clone()));
        }
        if self.halt.stopping() || !current() {
            return Err(GaveUp::Dropped);
        }
        Ok(())
    }
}

/// How long ago `row`'s record was produced (its write time is the record's time).
pub(super) fn since_produced(row: &TimedRow) -> Duration {
    let produced = std::time::UNIX_EPOCH + Duration::from_micros(row.write_time.max(0) as u64);
    std::time::SystemTime::now()
        .duration_since(produced)
        .unwrap_or_default()
}
