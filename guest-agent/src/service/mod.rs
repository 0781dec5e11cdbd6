//! The agent's gRPC service (`dpdkhost.agent.v1.Agent`).
//!
//! The data port lives in a slot. A workload takes it out, runs on its own thread
//! and puts it back when it returns (or panics), so there is one workload per port
//! at a time and a second request gets FAILED_PRECONDITION "busy: <what runs>".
//! Streaming RPCs report the workload's live counters about once a second; when the
//! client goes away the workload is told to stop.
//!
//! While the port sits in its slot, an idle thread answers ARP, ICMP echo and test
//! frames on it and watches its link (see `idle.rs`): a link that is down or a
//! device that is gone turns health NOT_SERVING and Info's EAL state FAILED with the
//! reason; workloads are still accepted (the link may come back while they run).

mod convert;
mod idle;
mod validate;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use agent_proto::v1::{self, agent_server::Agent};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::datapath::{DataPort, PortDetails};
use crate::eal::Eal;
use crate::handover::{Handover, ReleaseTarget, Released};
use crate::selftest::{self, Check};
use crate::workload::{
    self, BenchCounters, BenchLive, IdleCounters, PingPongLive, ReflectCounters, ReflectLive,
    StopSignal, WorkloadError,
};

/// How often streaming RPCs report progress.
const PROGRESS_PERIOD: Duration = Duration::from_secs(1);
/// How long Stop, StopReflect and shutdown wait for a workload to return the port.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a telemetry question may take: the other process answers from a thread
/// of its own, so only a stuck process takes long.
const TELEMETRY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the data port stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataplaneState {
    /// Binding, EAL and the port are being brought up.
    Starting,
    /// The port is open; workloads can run.
    Ready,
    /// Binding, EAL or the port failed (the reason), or the agent is shutting down.
    Failed(String),
    /// The port was handed over with ReleasePort; DPDK workloads are refused, kernel
    /// ones run when it went to the kernel.
    Released(ReleaseTarget),
    /// ReleasePort or AcquirePort is moving the port.
    Moving(&'static str),
}

/// How the agent reached its data NIC, for Info.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicDrivers {
    /// The NIC's kernel driver before binding (e.g. `virtio-pci`); empty for a vdev.
    pub kernel_driver: String,
    /// The driver it is bound to for DPDK (e.g. `uio_pci_generic`); empty for a vdev.
    pub bound_driver: String,
    /// The NIC's PCI address; empty for a vdev (or when it was not found).
    pub pci_address: String,
}

/// Options that do not change while the agent runs.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    /// Run the system checks (hugepages, ...) in Selftest: true in a VM, false for
    /// `--loopback` where the host has no hugepages on purpose.
    pub system_checks: bool,
}

type Describe = Arc<dyn Fn() -> String + Send + Sync>;

/// What the reflector leaves behind for StopReflect.
#[derive(Clone)]
struct ReflectHandles {
    outcome: Arc<Mutex<Option<Result<ReflectCounters, String>>>>,
}

struct Running {
    kind: &'static str,
    describe: Describe,
    stop: StopSignal,
    /// Closes when the workload has put the port back.
    done: watch::Receiver<()>,
    reflect: Option<ReflectHandles>,
}

struct Inner {
    state: DataplaneState,
    drivers: NicDrivers,
    /// Present while no workload runs.
    port: Option<DataPort>,
    /// The port as last seen, for Info while a workload holds it.
    details: Option<PortDetails>,
    running: Option<Running>,
    /// How to give the port away and take it back (absent until the port opened).
    handover: Option<Handover>,
    /// What the last ReleasePort handed over, while released.
    released: Option<Released>,
    /// Why the port is not usable though Ready (link down, device gone), as the
    /// idle thread last saw it.
    link_fault: Option<String>,
    /// What the idle responder answered and dropped since the agent started.
    idle: IdleCounters,
}

struct Shared {
    inner: Mutex<Inner>,
    health: HealthReporter,
    options: ServiceOptions,
}

async fn report_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(agent_proto::HEALTH_SERVICE_NAME, status)
        .await;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

use agent_proto::error_chain as chain;

fn workload_status(error: &WorkloadError) -> Status {
    match error {
        WorkloadError::PeerUnreachable { .. } => Status::failed_precondition(format!(
            "{} (is the peer's agent serving, with that data address?)",
            chain(error)
        )),
        _ => Status::internal(chain(error)),
    }
}

/// Holds the port while a workload runs; gives it back on drop, even when the
/// workload panics.
struct Lease {
    shared: Arc<Shared>,
    port: Option<DataPort>,
    _done: watch::Sender<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut inner = lock(&self.shared.inner);
        if let Some(port) = self.port.take() {
            inner.details = Some(port.details());
            inner.port = Some(port);
        }
        inner.running = None;
    }
}

/// The gRPC service. Cheap to clone.
#[derive(Clone)]
pub struct AgentService {
    shared: Arc<Shared>,
}

async fn wait_done(mut done: watch::Receiver<()>) -> Result<(), Status> {
    // Nothing is ever sent: changed() fails once the lease drops its sender.
    let closed = async { while done.changed().await.is_ok() {} };
    tokio::time::timeout(STOP_TIMEOUT, closed)
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!("the workload did not stop within {STOP_TIMEOUT:?}"))
        })
}

/// Feeds a streaming RPC: progress every second from `progress`, then the final
/// event from `finish`; stops the workload when the client goes away.
async fn drive_stream<T, E>(
    tx: mpsc::Sender<Result<E, Status>>,
    mut result: oneshot::Receiver<T>,
    stop: StopSignal,
    mut progress: impl FnMut() -> E,
    finish: impl FnOnce(T) -> Result<E, Status>,
) {
    let start = tokio::time::Instant::now() + PROGRESS_PERIOD;
    let mut ticker = tokio::time::interval_at(start, PROGRESS_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            outcome = &mut result => {
                let event = match outcome {
                    Ok(value) => finish(value),
                    Err(_) => Err(Status::internal(
                        "the workload ended without a result (it panicked; see the agent's log)",
                    )),
                };
                if tx.send(event).await.is_err() {
                    tracing::debug!("client went away before the result");
                }
                return;
            }
            _ = ticker.tick() => {
                // A client that does not read loses progress events, never memory.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(progress())) {
                    tracing::info!("client went away: stopping the workload");
                    stop.stop();
                    return;
                }
            }
            () = tx.closed() => {
                tracing::info!("client went away: stopping the workload");
                stop.stop();
                return;
            }
        }
    }
}

impl AgentService {
    /// A service whose data port is still [`DataplaneState::Starting`]; health says
    /// NOT_SERVING until [`AgentService::set_ready`].
    pub async fn new(health: HealthReporter, options: ServiceOptions) -> Self {
        let service = Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    state: DataplaneState::Starting,
                    drivers: NicDrivers::default(),
                    port: None,
                    details: None,
                    running: None,
                    handover: None,
                    released: None,
                    link_fault: None,
                    idle: IdleCounters::default(),
                }),
                health,
                options,
            }),
        };
        service.report_health(ServingStatus::NotServing).await;
        idle::spawn(
            Arc::downgrade(&service.shared),
            tokio::runtime::Handle::current(),
        );
        service
    }

    async fn report_health(&self, status: ServingStatus) {
        report_health(&self.shared.health, status).await;
    }

    /// What the idle responder answered and dropped so far.
    pub fn idle_counters(&self) -> IdleCounters {
        lock(&self.shared.inner).idle
    }

    /// The port is open: workloads can run; health says SERVING once its link is up.
    pub async fn set_ready(&self, port: DataPort, drivers: NicDrivers) {
        let status = {
            let mut inner = lock(&self.shared.inner);
            inner.details = Some(port.details());
            inner.link_fault = idle::link_fault(&port);
            inner.port = Some(port);
            inner.drivers = drivers;
            inner.state = DataplaneState::Ready;
            Self::ready_health(&inner)
        };
        self.report_health(status).await;
    }

    fn ready_health(inner: &Inner) -> ServingStatus {
        if let Some(reason) = &inner.link_fault {
            tracing::warn!(%reason, "data port open but not usable yet: NOT_SERVING");
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        }
    }

    /// Lets ReleasePort / AcquirePort hand the port over (without it they are refused).
    pub fn set_handover(&self, handover: Handover) {
        lock(&self.shared.inner).handover = Some(handover);
    }

    /// Binding, EAL or the port failed: the server stays up, Info says why and
    /// workloads are refused with that reason; health says NOT_SERVING.
    pub async fn set_failed(&self, reason: String, drivers: NicDrivers) {
        tracing::error!(%reason, "data port unavailable; serving Info and Selftest only");
        {
            let mut inner = lock(&self.shared.inner);
            inner.drivers = drivers;
            inner.state = DataplaneState::Failed(reason);
        }
        self.report_health(ServingStatus::NotServing).await;
    }

    /// The data port's state.
    pub fn state(&self) -> DataplaneState {
        lock(&self.shared.inner).state.clone()
    }

    /// Refuses new workloads, stops the one that runs and hands the port back to
    /// the caller (to close it before the NIC goes back to its kernel driver).
    pub async fn shutdown(&self) -> Option<DataPort> {
        let running = {
            let mut inner = lock(&self.shared.inner);
            if inner.state == DataplaneState::Released(ReleaseTarget::Kernel) {
                if let Some(handover) = &inner.handover {
                    handover.forget_kernel_address();
                }
            }
            inner.state = DataplaneState::Failed("the agent is shutting down".into());
            inner
                .running
                .as_ref()
                .map(|r| ((r.describe)(), r.stop.clone(), r.done.clone()))
        };
        self.report_health(ServingStatus::NotServing).await;
        if let Some((what, stop, done)) = running {
            tracing::info!(workload = %what, "stopping for shutdown");
            stop.stop();
            if let Err(status) = wait_done(done).await {
                tracing::error!(reason = status.message(), "workload still holds the port");
            }
        }
        lock(&self.shared.inner).port.take()
    }

    fn refusal(state: &DataplaneState) -> Option<Status> {
        match state {
            DataplaneState::Ready => None,
            DataplaneState::Starting => Some(Status::unavailable(
                "the data port is still starting (binding the NIC and initialising EAL)",
            )),
            DataplaneState::Failed(reason) => Some(Status::failed_precondition(format!(
                "data port unavailable: {reason}"
            ))),
            DataplaneState::Released(to) => Some(Status::failed_precondition(format!(
                "port released to {to} (AcquirePort takes it back)"
            ))),
            DataplaneState::Moving(what) => Some(Status::unavailable(format!(
                "the data port is being {what}"
            ))),
        }
    }

    /// Kernel-socket workloads need the port released to the kernel.
    fn kernel_refusal(state: &DataplaneState) -> Option<Status> {
        match state {
            DataplaneState::Released(ReleaseTarget::Kernel) => None,
            other => Some(Status::failed_precondition(format!(
                "kernel-socket workloads need the port released to the kernel (ReleasePort); {}",
                Self::refusal(other).map_or_else(
                    || "DPDK has it now".to_owned(),
                    |status| status.message().to_owned()
                )
            ))),
        }
    }

    /// Takes the port and runs `work` on a thread of its own; the port goes back
    /// into the slot when `work` returns, before the result is delivered.
    fn start<T, F>(
        &self,
        kind: &'static str,
        describe: Describe,
        stop: StopSignal,
        reflect: Option<ReflectHandles>,
        work: F,
    ) -> Result<oneshot::Receiver<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(&mut DataPort, &StopSignal) -> T + Send + 'static,
    {
        let mut lease = self.begin(kind, describe, stop.clone(), reflect, false)?;
        tracing::info!(workload = kind, "starting");
        spawn_workload(kind, format!("wl-{kind}"), move || {
            let port = lease.port.as_mut().expect("a lease holds the port");
            let result = work(port, &stop);
            drop(lease);
            result
        })
    }

    /// Like [`AgentService::start`] for kernel-socket workloads: the port must be
    /// released to the kernel; `work` gets the data address.
    fn start_kernel<T, F>(
        &self,
        kind: &'static str,
        describe: Describe,
        stop: StopSignal,
        reflect: Option<ReflectHandles>,
        work: F,
    ) -> Result<oneshot::Receiver<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(std::net::Ipv4Addr, &StopSignal) -> T + Send + 'static,
    {
        let ip = lock(&self.shared.inner)
            .details
            .as_ref()
            .map(|details| details.ip)
            .ok_or_else(|| Status::failed_precondition("the data address is not known"))?;
        let lease = self.begin(kind, describe, stop.clone(), reflect, true)?;
        tracing::info!(workload = kind, %ip, "starting on kernel sockets");
        spawn_workload(kind, format!("wl-k{kind}"), move || {
            let result = work(ip, &stop);
            drop(lease);
            result
        })
    }

    /// Checks the state and that nothing runs, marks the workload as running and
    /// takes the port (DPDK workloads) — one workload at a time either way.
    fn begin(
        &self,
        kind: &'static str,
        describe: Describe,
        stop: StopSignal,
        reflect: Option<ReflectHandles>,
        kernel: bool,
    ) -> Result<Lease, Status> {
        let (done_tx, done_rx) = watch::channel(());
        let port = {
            let mut inner = lock(&self.shared.inner);
            let refusal = if kernel {
                Self::kernel_refusal(&inner.state)
            } else {
                Self::refusal(&inner.state)
            };
            if let Some(status) = refusal {
                return Err(status);
            }
            if let Some(running) = &inner.running {
                return Err(Status::failed_precondition(format!(
                    "busy: {}",
                    (running.describe)()
                )));
            }
            let port = if kernel {
                None
            } else {
                let Some(port) = inner.port.take() else {
                    return Err(Status::internal("the data port is missing from its slot"));
                };
                Some(port)
            };
            inner.running = Some(Running {
                kind,
                describe,
                stop,
                done: done_rx,
                reflect,
            });
            port
        };
        Ok(Lease {
            shared: self.shared.clone(),
            port,
            _done: done_tx,
        })
    }

    fn info_now(&self) -> v1::InfoReply {
        let mut inner = lock(&self.shared.inner);
        if let Some(port) = &inner.port {
            inner.details = Some(port.details());
        }
        let (eal_state, eal_error) = match (&inner.state, &inner.link_fault) {
            (DataplaneState::Ready, Some(fault)) => (v1::EalState::Failed, fault.clone()),
            (DataplaneState::Ready, None) => (v1::EalState::Ready, String::new()),
            (DataplaneState::Starting, _) => (v1::EalState::Unspecified, "starting".to_owned()),
            (DataplaneState::Failed(reason), _) => (v1::EalState::Failed, reason.clone()),
            (DataplaneState::Released(to), _) => (
                v1::EalState::Released,
                match inner.released.as_ref().map(|r| r.ifname.as_str()) {
                    Some(ifname) if !ifname.is_empty() => {
                        format!("port released to {to} ({ifname})")
                    }
                    _ => format!("port released to {to}"),
                },
            ),
            (DataplaneState::Moving(what), _) => {
                (v1::EalState::Unspecified, format!("port being {what}"))
            }
        };
        let bound_driver = match (&inner.state, &inner.drivers.kernel_driver) {
            (DataplaneState::Released(ReleaseTarget::Kernel), kernel) if !kernel.is_empty() => {
                kernel.clone()
            }
            _ => inner.drivers.bound_driver.clone(),
        };
        v1::InfoReply {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            dpdk_version: Eal::dpdk_version(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .unwrap_or_default(),
            eal_state: eal_state.into(),
            eal_error,
            ports: inner.details.iter().map(convert::port_info).collect(),
            hugepages: Some(hugepages()),
            workload: inner
                .running
                .as_ref()
                .map(|r| (r.describe)())
                .unwrap_or_default(),
            kernel_driver: inner.drivers.kernel_driver.clone(),
            bound_driver,
            rss_bytes: rss_bytes(),
        }
    }
}

/// The default hugepage size's pool, from /proc/meminfo.
fn hugepages() -> v1::HugepageInfo {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    v1::HugepageInfo {
        page_size_bytes: field("Hugepagesize") * 1024,
        total_pages: field("HugePages_Total"),
        free_pages: field("HugePages_Free"),
    }
}

/// The agent's resident set, from /proc/self/status.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

type EventStream<E> = ReceiverStream<Result<E, Status>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn info(
        &self,
        _request: Request<v1::InfoRequest>,
    ) -> Result<Response<v1::InfoReply>, Status> {
        Ok(Response::new(self.info_now()))
    }

    async fn selftest(
        &self,
        request: Request<v1::SelftestRequest>,
    ) -> Result<Response<v1::SelftestReply>, Status> {
        let (peer, timeout) = validate::selftest(request.get_ref())?;
        let mut checks = if self.shared.options.system_checks {
            let pci_address = lock(&self.shared.inner).drivers.pci_address.clone();
            tokio::task::spawn_blocking(move || {
                let mut checks = selftest::system_checks();
                if !pci_address.is_empty() {
                    checks.push(selftest::binding_check(&pci_address));
                }
                checks
            })
            .await
            .map_err(|error| Status::internal(format!("system checks failed: {error}")))?
        } else {
            Vec::new()
        };
        let refusal = Self::refusal(&lock(&self.shared.inner).state);
        if let Some(status) = refusal {
            checks.push(Check {
                name: "data port".into(),
                ok: false,
                detail: status.message().to_owned(),
            });
        } else {
            let describe: Describe = Arc::new(|| "selftest".to_owned());
            let result = self.start("selftest", describe, StopSignal::default(), None, {
                move |port, _stop| selftest::port_checks(port, peer, timeout)
            })?;
            checks.extend(result.await.map_err(|_| {
                Status::internal("the selftest ended without a result (see the agent's log)")
            })?);
        }
        Ok(Response::new(v1::SelftestReply {
            ok: checks.iter().all(|check| check.ok),
            checks: checks.iter().map(convert::selftest_check).collect(),
        }))
    }

    type PingPongStream = EventStream<v1::PingPongEvent>;

    async fn ping_pong(
        &self,
        request: Request<v1::PingPongRequest>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        let params = validate::pingpong(request.get_ref())?;
        let kernel = request.get_ref().kernel;
        let live = Arc::new(PingPongLive::default());
        let stop = StopSignal::default();
        let describe: Describe = {
            let live = live.clone();
            let (peer, count) = (params.peer_ip, params.count);
            let via = if kernel { " via kernel UDP" } else { "" };
            Arc::new(move || {
                format!(
                    "pingpong to {peer}{via} ({}/{count} sent)",
                    live.snapshot().sent
                )
            })
        };
        let result = if kernel {
            self.start_kernel("pingpong", describe, stop.clone(), None, {
                let live = live.clone();
                move |ip, stop| workload::kernel::pingpong(ip, &params, &live, stop)
            })?
        } else {
            self.start("pingpong", describe, stop.clone(), None, {
                let live = live.clone();
                move |port, stop| workload::pingpong(port, &params, &live, stop)
            })?
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(drive_stream(
            tx,
            result,
            stop,
            move || v1::PingPongEvent {
                event: Some(v1::ping_pong_event::Event::Progress(
                    convert::pingpong_progress(&live.snapshot()),
                )),
            },
            |outcome| {
                let report = outcome.map_err(|error| workload_status(&error))?;
                let result = convert::pingpong_result(&report).map_err(|error| {
                    Status::internal(format!("cannot encode the histogram: {}", chain(&error)))
                })?;
                Ok(v1::PingPongEvent {
                    event: Some(v1::ping_pong_event::Event::Result(result)),
                })
            },
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn reflect(
        &self,
        request: Request<v1::ReflectRequest>,
    ) -> Result<Response<v1::ReflectReply>, Status> {
        let live = Arc::new(ReflectLive::default());
        let handles = ReflectHandles {
            outcome: Arc::new(Mutex::new(None)),
        };
        let kernel = request.get_ref().kernel;
        let describe: Describe = {
            let live = live.clone();
            let via = if kernel { " via kernel UDP" } else { "" };
            Arc::new(move || format!("reflect{via} ({} reflected)", live.snapshot().reflected))
        };
        let outcome = handles.outcome.clone();
        if kernel {
            self.start_kernel(
                "reflect",
                describe,
                StopSignal::default(),
                Some(handles),
                move |ip, stop| {
                    let result = workload::kernel::reflect(ip, &live, stop).map_err(|error| {
                        let text = chain(&error);
                        tracing::error!(error = %text, "kernel reflect failed");
                        text
                    });
                    *lock(&outcome) = Some(result);
                },
            )?;
            return Ok(Response::new(v1::ReflectReply {}));
        }
        self.start(
            "reflect",
            describe,
            StopSignal::default(),
            Some(handles),
            move |port, stop| {
                let result = workload::reflect(port, &live, stop).map_err(|error| {
                    let text = chain(&error);
                    tracing::error!(error = %text, "reflect failed");
                    text
                });
                // Set before the lease goes: StopReflect reads it once the port is back.
                *lock(&outcome) = Some(result);
            },
        )?;
        Ok(Response::new(v1::ReflectReply {}))
    }

    async fn stop_reflect(
        &self,
        _request: Request<v1::StopReflectRequest>,
    ) -> Result<Response<v1::StopReflectReply>, Status> {
        let (stop, done, handles) = {
            let inner = lock(&self.shared.inner);
            match &inner.running {
                Some(Running {
                    stop,
                    done,
                    reflect: Some(handles),
                    ..
                }) => (stop.clone(), done.clone(), handles.clone()),
                Some(other) => {
                    return Err(Status::failed_precondition(format!(
                        "reflect is not running (busy: {})",
                        (other.describe)()
                    )))
                }
                None => return Err(Status::failed_precondition("reflect is not running")),
            }
        };
        stop.stop();
        wait_done(done).await?;
        let outcome = lock(&handles.outcome).take();
        match outcome {
            Some(Ok(counters)) => Ok(Response::new(v1::StopReflectReply {
                counters: Some(convert::reflect_counters(&counters)),
            })),
            Some(Err(error)) => Err(Status::internal(error)),
            None => Err(Status::internal(
                "the reflector ended without counters (see the agent's log)",
            )),
        }
    }

    type BenchStream = EventStream<v1::BenchEvent>;

    async fn bench(
        &self,
        request: Request<v1::BenchRequest>,
    ) -> Result<Response<Self::BenchStream>, Status> {
        let params = validate::bench(request.get_ref())?;
        let live = Arc::new(BenchLive::default());
        let stop = StopSignal::default();
        let describe: Describe = {
            let live = live.clone();
            let what = match (params.mode, params.peer_ip) {
                (workload::BenchMode::Tx, Some(peer)) => format!("bench tx to {peer}"),
                (workload::BenchMode::Both, Some(peer)) => format!("bench tx+rx with {peer}"),
                _ => "bench rx".to_owned(),
            };
            Arc::new(move || {
                let now = live.snapshot();
                format!(
                    "{what} ({} s, {} sent, {} received)",
                    now.elapsed.as_secs(),
                    now.tx_packets,
                    now.rx_packets
                )
            })
        };
        let result = self.start("bench", describe, stop.clone(), None, {
            let live = live.clone();
            move |port, stop| workload::bench(port, &params, &live, stop)
        })?;
        let (tx, rx) = mpsc::channel(4);
        let mut previous = BenchCounters::default();
        let mut previous_at = std::time::Instant::now();
        let mut second = 0;
        tokio::spawn(drive_stream(
            tx,
            result,
            stop,
            move || {
                let now = live.snapshot();
                let at = std::time::Instant::now();
                let over = at.duration_since(previous_at);
                second += 1;
                let progress = v1::BenchProgress {
                    second,
                    tx_pps: convert::rate(now.tx_packets.saturating_sub(previous.tx_packets), over),
                    rx_pps: convert::rate(now.rx_packets.saturating_sub(previous.rx_packets), over),
                    total: Some(convert::bench_counters(&now)),
                };
                (previous, previous_at) = (now, at);
                v1::BenchEvent {
                    event: Some(v1::bench_event::Event::Progress(progress)),
                }
            },
            |outcome| {
                let report = outcome.map_err(|error| workload_status(&error))?;
                Ok(v1::BenchEvent {
                    event: Some(v1::bench_event::Event::Result(convert::bench_result(
                        &report,
                    ))),
                })
            },
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn stop(
        &self,
        _request: Request<v1::StopRequest>,
    ) -> Result<Response<v1::StopReply>, Status> {
        let running = lock(&self.shared.inner)
            .running
            .as_ref()
            .map(|r| ((r.describe)(), r.kind, r.stop.clone(), r.done.clone()));
        let Some((what, kind, stop, done)) = running else {
            return Ok(Response::new(v1::StopReply::default()));
        };
        tracing::info!(workload = kind, "Stop");
        stop.stop();
        wait_done(done).await?;
        Ok(Response::new(v1::StopReply { stopped: what }))
    }

    async fn release_port(
        &self,
        request: Request<v1::ReleasePortRequest>,
    ) -> Result<Response<v1::ReleasePortReply>, Status> {
        let to = match v1::ReleaseTo::try_from(request.get_ref().to) {
            Ok(v1::ReleaseTo::Kernel) => ReleaseTarget::Kernel,
            Ok(v1::ReleaseTo::DpdkProcess) => ReleaseTarget::DpdkProcess,
            _ => {
                return Err(validate::invalid_field(
                    "to",
                    "must be RELEASE_TO_KERNEL or RELEASE_TO_DPDK_PROCESS",
                ))
            }
        };
        let (port, mut handover) = {
            let mut inner = lock(&self.shared.inner);
            if let (DataplaneState::Released(now), Some(released)) = (&inner.state, &inner.released)
            {
                if *now == to {
                    return Ok(Response::new(convert::released(released)));
                }
            }
            if let Some(running) = &inner.running {
                return Err(Status::failed_precondition(format!(
                    "busy: {}",
                    (running.describe)()
                )));
            }
            if let Some(status) = Self::refusal(&inner.state) {
                return Err(status);
            }
            let Some(handover) = inner.handover.take() else {
                return Err(Status::failed_precondition(
                    "this agent cannot hand its port over",
                ));
            };
            let Some(port) = inner.port.take() else {
                inner.handover = Some(handover);
                return Err(Status::internal("the data port is missing from its slot"));
            };
            inner.details = Some(port.details());
            inner.state = DataplaneState::Moving("released");
            (port, handover)
        };
        self.report_health(ServingStatus::NotServing).await;
        let outcome = tokio::task::spawn_blocking(move || {
            let result = handover.release(port, to);
            (handover, result)
        })
        .await
        .map_err(|error| Status::internal(format!("releasing the port panicked: {error}")))?;
        let (handover, result) = outcome;
        let mut inner = lock(&self.shared.inner);
        inner.handover = Some(handover);
        match result {
            Ok(mut released) => {
                if to == ReleaseTarget::DpdkProcess {
                    released
                        .eal_args
                        .extend(["--file-prefix".to_owned(), "baseline".to_owned()]);
                }
                inner.state = DataplaneState::Released(to);
                let mut reply = convert::released(&released);
                reply.free_hugepages = hugepages().free_pages;
                inner.released = Some(released);
                Ok(Response::new(reply))
            }
            Err(error) => {
                // The port is closed; AcquirePort may still bring it back.
                let reason = format!("releasing the port to {to} failed: {}", chain(&error));
                tracing::error!(%reason);
                inner.state = DataplaneState::Released(to);
                inner.released = None;
                Err(Status::internal(reason))
            }
        }
    }

    async fn acquire_port(
        &self,
        _request: Request<v1::AcquirePortRequest>,
    ) -> Result<Response<v1::AcquirePortReply>, Status> {
        let (from, mut handover) = {
            let mut inner = lock(&self.shared.inner);
            let from = match &inner.state {
                DataplaneState::Released(from) => *from,
                DataplaneState::Ready => {
                    return Ok(Response::new(v1::AcquirePortReply {
                        was_released: false,
                    }))
                }
                other => {
                    return Err(Self::refusal(other).unwrap_or_else(|| {
                        Status::failed_precondition("the port is not released")
                    }))
                }
            };
            if let Some(running) = &inner.running {
                return Err(Status::failed_precondition(format!(
                    "busy: {}",
                    (running.describe)()
                )));
            }
            let Some(handover) = inner.handover.take() else {
                return Err(Status::internal("the handover state is missing"));
            };
            inner.state = DataplaneState::Moving("taken back");
            (from, handover)
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let result = handover.acquire(from);
            (handover, result)
        })
        .await
        .map_err(|error| Status::internal(format!("taking the port back panicked: {error}")))?;
        let (handover, result) = outcome;
        let reply = {
            let mut inner = lock(&self.shared.inner);
            inner.handover = Some(handover);
            inner.released = None;
            match result {
                Ok(port) => {
                    inner.details = Some(port.details());
                    inner.link_fault = idle::link_fault(&port);
                    inner.port = Some(port);
                    inner.state = DataplaneState::Ready;
                    Ok((
                        Response::new(v1::AcquirePortReply { was_released: true }),
                        Self::ready_health(&inner),
                    ))
                }
                Err(error) => {
                    let reason =
                        format!("taking the port back from {from} failed: {}", chain(&error));
                    tracing::error!(%reason);
                    inner.state = DataplaneState::Failed(reason.clone());
                    Err(Status::internal(reason))
                }
            }
        };
        let (reply, status) = reply?;
        self.report_health(status).await;
        Ok(reply)
    }

    async fn telemetry(
        &self,
        request: Request<v1::TelemetryRequest>,
    ) -> Result<Response<v1::TelemetryReply>, Status> {
        use crate::telemetry::{self, TelemetryError};
        let request = request.into_inner();
        let path = telemetry::socket_path(&request.file_prefix)
            .map_err(|error| validate::invalid_field("file_prefix", error))?;
        telemetry::check_command(&request.command)
            .map_err(|error| validate::invalid_field("command", error))?;
        let answer = tokio::task::spawn_blocking(move || {
            telemetry::query(&path, &request.command, TELEMETRY_TIMEOUT)
        })
        .await
        .map_err(|error| Status::internal(format!("the telemetry query panicked: {error}")))?;
        match answer {
            Ok(answer) => Ok(Response::new(v1::TelemetryReply {
                json: answer.json,
                greeting: answer.greeting,
            })),
            Err(error @ TelemetryError::NoProcess { .. }) => Err(Status::not_found(chain(&error))),
            Err(error) => Err(Status::unavailable(chain(&error))),
        }
    }
}

/// Runs `job` on a thread named `thread` and delivers its result through the returned
/// channel. `job` owns the workload's lease and drops it before returning, so the port
/// is back in its slot before the result arrives; a failed spawn drops `job`, and with
/// it the lease, at once.
fn spawn_workload<T, J>(
    kind: &'static str,
    thread: String,
    job: J,
) -> Result<oneshot::Receiver<T>, Status>
where
    T: Send + 'static,
    J: FnOnce() -> T + Send + 'static,
{
    let (result_tx, result_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(thread)
        .spawn(move || {
            let result = job();
            tracing::info!(workload = kind, "finished");
            let _ = result_tx.send(result);
        })
        .map_err(|error| {
            Status::resource_exhausted(format!("cannot start a workload thread: {error}"))
        })?;
    Ok(result_rx)
}
