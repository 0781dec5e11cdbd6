//! The idle responder and the port's health watch: one thread that, while the port
//! sits in its slot and no workload runs, answers on it like a host's kernel would
//! (see [`crate::workload::idle`]), and every [`LINK_CHECK_PERIOD`] asks the driver
//! for the link: when it is down, or the query fails (the device went away), health
//! says NOT_SERVING and Info reports why; when it is back, SERVING again.
//!
//! The thread never holds the port across its sleep: each tick takes the service
//! lock, polls a few bursts and lets go, so a workload request finds the port in its
//! slot as before (it waits at most for one tick's bursts). It sleeps between ticks,
//! [`FAST_POLL`] right after traffic and backing off to [`QUIET_POLL`]: under TCG the
//! guest has one vCPU for everything, so it must not busy-poll.

use std::sync::Weak;
use std::time::{Duration, Instant};

use tonic_health::ServingStatus;

use super::{lock, report_health, DataplaneState, Shared};
use crate::datapath::DataPort;
use crate::workload::idle::answer_one_burst;
use crate::workload::IdleCounters;

/// Tick period right after traffic.
const FAST_POLL: Duration = Duration::from_millis(1);
/// Tick period when the link is quiet (the pause doubles up to it).
const QUIET_POLL: Duration = Duration::from_millis(10);
/// Rx bursts per tick at most, so the service lock is held briefly.
const BURSTS_PER_TICK: usize = 8;
/// How often the link is checked.
pub(super) const LINK_CHECK_PERIOD: Duration = Duration::from_secs(2);
/// The counters are logged at most this often (when they changed).
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// Why the port is not usable now, from its link: None when the link is up.
pub(super) fn link_fault(port: &DataPort) -> Option<String> {
    let device = port.port().name().to_owned();
    match port.link() {
        Ok(link) if link.up => None,
        Ok(_) => Some(format!("data port {device}: link is down")),
        Err(error) => Some(format!(
            "data port {device}: link query failed: {}",
            super::chain(&error)
        )),
    }
}

/// Starts the thread; it ends when the service is dropped.
pub(super) fn spawn(shared: Weak<Shared>, runtime: tokio::runtime::Handle) {
    let started = std::thread::Builder::new()
        .name("idle-port".into())
        .spawn(move || run(&shared, &runtime));
    if let Err(error) = started {
        tracing::error!(%error, "cannot start the idle responder: an idle port answers nothing and its link is not watched");
    }
}

fn run(shared: &Weak<Shared>, runtime: &tokio::runtime::Handle) {
    let mut pause = QUIET_POLL;
    let mut next_link_check = Instant::now();
    let mut logged = IdleCounters::default();
    let mut logged_at = Instant::now();
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut traffic = false;
        {
            let mut guard = lock(&shared.inner);
            let inner = &mut *guard;
            let idle = inner.state == DataplaneState::Ready && inner.running.is_none();
            if let (true, Some(port)) = (idle, inner.port.as_mut()) {
                for _ in 0..BURSTS_PER_TICK {
                    let burst = answer_one_burst(port);
                    inner.idle.add(&burst);
                    if burst.received == 0 {
                        break;
                    }
                    traffic = true;
                }
                let now = Instant::now();
                if now >= next_link_check {
                    next_link_check = now + LINK_CHECK_PERIOD;
                    let fault = link_fault(port);
                    if fault != inner.link_fault {
                        let status = match &fault {
                            Some(reason) => {
                                tracing::warn!(%reason, "data port fault: NOT_SERVING");
                                ServingStatus::NotServing
                            }
                            None => {
                                tracing::info!("data port link is up again: SERVING");
                                ServingStatus::Serving
                            }
                        };
                        inner.link_fault = fault;
                        // Under the lock, so a state change (ReleasePort, shutdown)
                        // cannot report its health before this and be overwritten.
                        runtime.block_on(report_health(&shared.health, status));
                    }
                }
            }
            if inner.idle != logged && logged_at.elapsed() >= LOG_PERIOD {
                tracing::info!(counters = ?inner.idle, "idle responder");
                (logged, logged_at) = (inner.idle, Instant::now());
            }
        }
        drop(shared);
        pause = if traffic {
            FAST_POLL
        } else {
            (pause * 2).min(QUIET_POLL)
        };
        std::thread::sleep(pause);
    }
}
