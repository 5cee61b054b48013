//! The writer: decode → transform → write, retrying transient failures for as long as they
//! last, dead-lettering poison, and freeing the record's slot when it is done. Every record in
//! flight is a future in one `FuturesUnordered`, polled by this one task, rather than a task
//! of its own (a task per row cost an allocation and a trip through the scheduler each). A
//! task apart from the poll loop, because a revoke waits for these rows inside that loop's
//! `recv`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backoff::Backoff;
use common::fault::{Class, Fault};
use domain::UserRow;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::mpsc::UnboundedReceiver;

use super::halt::Halt;
use super::in_flight::InFlight;
use super::work::{produced_ms, Work};
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
    pub in_flight: Arc<InFlight>,
    pub halt: Arc<Halt>,
    pub metrics: Arc<Metrics>,
}

impl Writer {
    /// Writes every record the poll loop sends until the channel closes.
    pub async fn run(self, mut records: UnboundedReceiver<Work>) {
        let mut writing = FuturesUnordered::new();
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                // Finishing rows first frees their slots before taking more.
                biased;
                Some(()) = writing.next(), if !writing.is_empty() => {}
                taken = records.recv_many(&mut batch, 64) => {
                    if taken == 0 {
                        break;
                    }
                    writing.extend(batch.drain(..).map(|work| self.process(work)));
                }
            }
        }
        while writing.next().await.is_some() {}
    }

    /// One record, start to finish: written, dead-lettered, or (on a fatal
    /// fault) abandoned, so that its offset is never committed by this run.
    async fn process(&self, work: Work) {
        let (partition, offset) = (work.partition(), work.offset());
        let done = match work {
            Work::Row {
                produced_ms, row, ..
            } => {
                self.write_row(&row, produced_ms, &mut self.backoff.clone())
                    .await
            }
            // Boxed: rare, and its registry lookup would otherwise make every record's future
            // (copied whole into the writer's set) that much bigger.
            Work::Record(message) => Box::pin(self.handle(&message)).await,
        };
        match done {
            Ok(()) => self.in_flight.finish(partition, offset),
            Err(fault) => {
                self.in_flight.abandon(partition, offset);
                self.halt.raise(fault);
            }
        }
    }

    /// Writes `row`, retrying transient failures for as long as they last. Returns only a
    /// fatal fault.
    async fn write_row(
        &self,
        row: &UserRow,
        produced_ms: i64,
        backoff: &mut Backoff,
    ) -> Result<(), Fault> {
        loop {
            let begun = Instant::now();
            // Boxed: the driver's request future is several KB, and inline it would make every
            // record's future that size, copied whole into the writer's set.
            match Box::pin(self.sink.write(row)).await {
                Ok(()) => {
                    let produced =
                        std::time::UNIX_EPOCH + Duration::from_millis(produced_ms.max(0) as u64);
                    let since_produced = std::time::SystemTime::now()
                        .duration_since(produced)
                        .unwrap_or_default();
                    self.metrics.written(begun.elapsed(), since_produced);
                    return Ok(());
                }
                Err(f) if f.class == Class::Retry => {
                    self.retry_after("cassandra", backoff, &f).await?
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// Decodes `message` (asking the registry for its writer schema) and writes it, or
    /// dead-letters it if it is poison, retrying transient failures for as long as they last.
    /// Returns only a fatal fault.
    async fn handle(&self, message: &OwnedMessage) -> Result<(), Fault> {
        let produced_ms = produced_ms(message);
        let mut backoff = self.backoff.clone();
        let decoded = loop {
            match self.decoder.to_row(message.payload(), produced_ms).await {
                Ok(row) => break Ok(row),
                Err(f) if f.class == Class::Poison => break Err(f),
                Err(f) if f.class == Class::Retry => {
                    self.retry_after("registry", &mut backoff, &f).await?
                }
                Err(f) => return Err(f),
            }
        };
        backoff.reset();
        match decoded {
            Ok(row) => self.write_row(&row, produced_ms, &mut backoff).await,
            Err(poison) => self.dead_letter(message, &poison, &mut backoff).await,
        }
    }

    /// Parks a poison record in the dead-letter topic, retrying transient failures. A
    /// dead letter the DLQ refuses for good is reported and skipped: retried, it would hold
    /// its partition's offset for ever. Returns only a fatal fault.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        poison: &Fault,
        backoff: &mut Backoff,
    ) -> Result<(), Fault> {
        loop {
            match self.dlq.send(message, poison).await {
                Ok(()) => {
                    self.metrics
                        .dead_lettered(poison, message.partition(), message.offset());
                    return Ok(());
                }
                Err(e) if common::fault::kafka::record_refused(&e) => {
                    let at = (message.topic(), message.partition(), message.offset());
                    self.metrics
                        .dead_letter_refused(at, poison, &self.dlq.refusal(&e));
                    return Ok(());
                }
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
                        return Err(fault);
                    }
                    self.retry_after("dlq", backoff, &fault).await?
                }
            }
        }
    }

    /// Waits out a transient failure before the next attempt, unless the run
    /// is stopping for a fatal fault, which is then returned.
    async fn retry_after(
        &self,
        what: &'static str,
        backoff: &mut Backoff,
        fault: &Fault,
    ) -> Result<(), Fault> {
        self.metrics
            .retry(what, backoff.attempts() + 1, &fault.message);
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = self.halt.raised() => {}
        }
        match self.halt.fault() {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }
}
