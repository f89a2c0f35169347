//! Whether a worker has anything left to read: control state, kept apart
//! from its metrics. Readers say which shards they have read to the tip;
//! each lease pass publishes, on a `watch` channel, how many open shards are
//! not known to be read to their tip. [`stop_when_idle`] is the watcher
//! behind `consume --exit-when-idle`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;
use super::shard::ReaderContext;

/// How far a worker's shards are read. Nothing here is a figure: it is
/// what decides whether the worker may stop, and is never published as a
/// metric.
#[derive(Debug)]
pub struct Settledness {
    /// Shards whose reader's latest GetRecords found nothing new.
    at_tip: Mutex<HashSet<String>>,
    /// Open shards not known to be read to their tip: unread (free,
    /// expired, or ours without a reader) or read by us and not caught up.
    /// Set by each lease pass that completes; None before the first one and
    /// after one that failed (what is read is then unknown).
    unsettled: watch::Sender<Option<usize>>,
}

impl Default for Settledness {
    fn default() -> Self {
        Self {
            at_tip: Mutex::default(),
            unsettled: watch::Sender::new(None),
        }
    }
}

impl Settledness {
    /// Whether the reader of `shard` has caught up with the tip (its latest
    /// read found nothing new) or not (it got records, or an error, or it
    /// stopped reading the shard).
    pub fn at_tip(&self, shard: &str, caught_up: bool) {
        let mut at_tip = self.at_tip.lock().expect("settledness lock");
        if caught_up {
            at_tip.insert(shard.to_string());
        } else {
            at_tip.remove(shard);
        }
    }

    pub fn is_at_tip(&self, shard: &str) -> bool {
        self.at_tip
            .lock()
            .expect("settledness lock")
            .contains(shard)
    }

    /// What a lease pass found: the number of unsettled shards, or None
    /// when it is unknown.
    pub fn publish(&self, unsettled: Option<usize>) {
        // `send_replace` stores the value even while nobody watches.
        self.unsettled.send_replace(unsettled);
    }

    /// A receiver of what the lease passes publish.
    pub fn subscribe(&self) -> watch::Receiver<Option<usize>> {
        self.unsettled.subscribe()
    }
}

/// Cancels `stop` once the worker is idle: no new record for `idle`, no
/// shard behind, and every open shard read to its tip, by this worker or
/// another live one (a reader backing off after errors, or a lease lost and
/// not yet taken back, is not idle). Never before a dead worker's leases
/// could have expired and been taken over (the lease duration plus two
/// lease intervals after the start): "nothing to read" must mean nothing is
/// left. Runs as a task of its own; returns at once.
pub fn stop_when_idle(
    ctx: &ReaderContext,
    config: &WorkerConfig,
    idle: Duration,
    stop: CancellationToken,
) {
    let metrics = ctx.metrics.clone();
    let settled = ctx.settled.subscribe();
    let settle = config.lease_duration + config.lease_interval * 2;
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut last = (u64::MAX, started);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = metrics.snapshot();
            let unsettled = *settled.borrow() != Some(0);
            if now.records_in != last.0 || now.millis_behind_latest > 0 || unsettled {
                last = (now.records_in, tokio::time::Instant::now());
            } else if last.1.elapsed() >= idle && started.elapsed() >= settle {
                tracing::info!(idle_s = idle.as_secs(), "idle, stopping");
                stop.cancel();
                return;
            }
        }
    });
}
