//! The end of the soak: the wait for the pipeline to write and commit everything, and the
//! checks the run passes or fails (every user one row at QUORUM, nothing dead-lettered, every
//! offset committed, RSS and open files flat).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use bed::Kafka;
use scylla::client::session::Session;

use super::monitor::Minute;
use super::{stamp_now, Names};

/// What the end of the soak needs of its flags: how long to wait for the pipeline, and what
/// counts as flat.
#[derive(Debug, Clone)]
pub(super) struct VerdictSettings {
    pub(super) settle: Duration,
    /// The producer's run: flatness is judged on its minutes only.
    pub(super) duration: Duration,
    pub(super) max_growth: f64,
}

/// The last state of the wait for the pipeline to catch up.
#[derive(Debug, Default)]
pub(super) struct Settled {
    rows: u64,
    ids: u64,
    end: Vec<i64>,
    committed: Vec<i64>,
    dead_letters: i64,
    error: Option<String>,
    took: Duration,
}

impl Settled {
    fn done(&self, published: u64) -> bool {
        self.error.is_none()
            && self.rows == published
            && self.ids == published
            && self.end.iter().sum::<i64>() == published as i64
            && self.committed == self.end
    }

    pub(super) fn judge(&self, verdict: &mut Verdict, published: u64) {
        if let Some(e) = &self.error {
            verdict.check("read back", false, e.clone());
        }
        verdict.check(
            "every user one row at QUORUM",
            self.rows == published && self.ids == published,
            format!(
                "{} rows, {} distinct ids, {published} published",
                self.rows, self.ids
            ),
        );
        verdict.check(
            "topic holds what was published",
            self.end.iter().sum::<i64>() == published as i64,
            format!(
                "end offsets sum {}, published {published}",
                self.end.iter().sum::<i64>()
            ),
        );
        verdict.check(
            "no dead letters",
            self.dead_letters == 0,
            format!("{} on the DLQ", self.dead_letters),
        );
        verdict.check(
            "offsets committed",
            self.committed == self.end && !self.end.is_empty(),
            format!("committed {:?}, end {:?}", self.committed, self.end),
        );
    }
}

/// Polls until every published user is one row at QUORUM and the group committed every
/// offset, or `--settle` passes; returns the last state either way.
pub(super) async fn settle(
    settings: &VerdictSettings,
    session: &Session,
    kafka: &Kafka,
    names: &Names,
    published: u64,
    start: Instant,
) -> Settled {
    let began = Instant::now();
    loop {
        let mut state = observe(session, kafka, names)
            .await
            .unwrap_or_else(|e| Settled {
                error: Some(format!("{e:#}")),
                ..Settled::default()
            });
        state.took = began.elapsed();
        if state.done(published) || began.elapsed() > settings.settle {
            println!(
                "soak: {} settled in {:.0}s: {} rows, {} distinct ids, committed {} of {}",
                stamp_now(start),
                state.took.as_secs_f64(),
                state.rows,
                state.ids,
                state.committed.iter().map(|c| c.max(&0)).sum::<i64>(),
                state.end.iter().sum::<i64>()
            );
            return state;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn observe(session: &Session, kafka: &Kafka, names: &Names) -> Result<Settled> {
    let (rows, ids) = bed::cassandra::rows_at_quorum(session, &names.keyspace).await?;
    let end = kafka.end_offsets(&names.topic).await?;
    let committed = kafka.committed(&names.group, &names.topic).await?;
    let dead_letters = kafka.end_offsets(&names.dlq).await?.iter().sum();
    Ok(Settled {
        rows,
        ids,
        end,
        committed,
        dead_letters,
        ..Settled::default()
    })
}

/// RSS and open files per replica, the last minute of the run over the second (the first is
/// start-up: connections, caches, the JIT of the other side). A replica restarted in between
/// starts lower, so it can hide a leak but never fake one.
pub(super) fn flatness(verdict: &mut Verdict, minutes: &[Minute], settings: &VerdictSettings) {
    let (duration, max) = (settings.duration, settings.max_growth);
    let during: Vec<&Minute> = minutes
        .iter()
        .filter(|m| m.minute * 60 <= duration.as_secs())
        .collect();
    let (Some(first), Some(last)) = (during.get(1).or(during.first()), during.last()) else {
        verdict.check("RSS flat", false, "no minute figures".into());
        return;
    };
    let rss = growth(&first.rss_mib, &last.rss_mib);
    let fds = growth(
        &first
            .fds
            .iter()
            .map(|f| f.map(|f| f as f64))
            .collect::<Vec<_>>(),
        &last
            .fds
            .iter()
            .map(|f| f.map(|f| f as f64))
            .collect::<Vec<_>>(),
    );
    for (what, ratios) in [("RSS flat", rss), ("open files flat", fds)] {
        let worst = ratios.iter().flatten().copied().fold(0.0, f64::max);
        let mut detail = String::new();
        for (i, r) in ratios.iter().enumerate() {
            let _ = write!(
                detail,
                "replica {}: {} ",
                i + 1,
                r.map_or("-".into(), |r| format!("x{r:.2}"))
            );
        }
        let _ = write!(
            detail,
            "(minute {} -> {}, limit x{max:.2})",
            first.minute, last.minute
        );
        verdict.check(
            what,
            worst <= max && ratios.iter().any(Option::is_some),
            detail,
        );
    }
}

fn growth(from: &[Option<f64>], to: &[Option<f64>]) -> Vec<Option<f64>> {
    from.iter()
        .zip(to)
        .map(|(a, b)| Some(b.as_ref()? / a.filter(|a| *a > 0.0)?))
        .collect()
}

/// The checks, printed as they are made; a failed one names itself in the exit error.
#[derive(Default)]
pub(super) struct Verdict {
    pub(super) failed: Vec<&'static str>,
}

impl Verdict {
    pub(super) fn check(&mut self, name: &'static str, ok: bool, detail: String) {
        println!(
            "soak: {} {name}: {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
        if !ok {
            self.failed.push(name);
        }
    }

    pub(super) fn finish(self) -> Result<()> {
        ensure!(
            self.failed.is_empty(),
            "soak failed: {}",
            self.failed.join(", ")
        );
        println!("soak: PASSED");
        Ok(())
    }
}
