//! `dpdk-agent serve`: configuration, NIC binding, EAL, the gRPC server, signals.
//!
//! In a VM (what the systemd unit runs): read /etc/dpdk-agent/agent.toml, bind the
//! data NIC for DPDK, initialise EAL on it and serve mutual-TLS gRPC on the
//! management address. With `--loopback` (or `--vdev`): no config file needed, no
//! PCI, no hugepages — a ring (or memif, ...) virtual device, for tests and demos.
//!
//! The listener and the data port come up concurrently: health is NOT_SERVING
//! until the port is open, SERVING after, and stays NOT_SERVING (Info says why)
//! when binding or EAL failed — the server keeps running either way. SIGTERM or
//! SIGINT stops workloads, closes the port, gives the NIC back to its original
//! driver and exits 0.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_proto::config::{parse_cidr, AgentConfig, ConfigError, TlsPaths, DEFAULT_CONFIG_PATH};
use agent_proto::v1::agent_server::AgentServer;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::bind::{self, BindRequest, Binding, SysfsRoot, SystemKernel};
use crate::connections;
use crate::control::{self, ControlError};
use crate::datapath::{DataPort, DataPortSpec, PortSelector};
use crate::devlock::{self, DeviceLocks};
use crate::eal::Eal;
use crate::handover::{Device, Handover};
use crate::service::{AgentService, NicDrivers, ServiceOptions};
use crate::tls;

/// How long a graceful shutdown may wait for connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request the agent decodes; every real request is a few dozen bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Hugepage memory EAL takes in a VM. The guest reserves 64 pages of 2 MiB (128 MiB);
/// the agent preallocates half, which holds its pool (8191 mbufs, ~19 MB) with room
/// to open the port again after a handover, and leaves 64 MiB for a DPDK process it
/// hands the port to (dpdk-testpmd for `bench --baseline testpmd`): EAL never gives
/// preallocated pages back, even when the port and its pool are freed.
const VM_EAL_MEMORY_MB: &str = "64";
/// Memory for `--loopback` / `--vdev` (no hugepages).
const VDEV_EAL_MEMORY_MB: &str = "128";
/// The data address with `--loopback` unless `--data-ip` says otherwise.
const LOOPBACK_DATA_IP: &str = "10.0.0.1/24";

/// Options of `dpdk-agent serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Agent configuration (TOML). Required in a VM; with --loopback/--vdev it is
    /// read only when given explicitly.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (overrides the configuration's `listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Serve plaintext gRPC, without TLS (host-side tests and demos only).
    #[arg(long)]
    pub insecure: bool,
    /// Serve over a ring loopback device (net_ring0) with no hugepages and no PCI:
    /// runs on any Linux host.
    #[arg(long)]
    pub loopback: bool,
    /// Use this DPDK virtual device as the data port instead of a NIC, e.g.
    /// `net_memif0,role=server,socket=/tmp/x/memif.sock` (implies no PCI, no hugepages).
    #[arg(long, value_name = "SPEC")]
    pub vdev: Option<String>,
    /// The data address with prefix (overrides the configuration's `data_ip`;
    /// 10.0.0.1/24 with --loopback).
    #[arg(long, value_name = "A.B.C.D/LEN")]
    pub data_ip: Option<String>,
    /// An extra EAL argument, appended last (repeatable).
    #[arg(long = "eal-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub eal_args: Vec<String>,
    /// CA certificate clients must chain to (overrides the configuration's tls.ca).
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// The agent's certificate (overrides tls.cert).
    #[arg(long, value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The agent's private key (overrides tls.key).
    #[arg(long, value_name = "PEM", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// How long to keep retrying the listen address (it may come up after the agent).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub listen_retry_secs: u64,
    /// The local control socket (root only, no TLS) that `dpdk-agent --selftest`
    /// uses; default `<run dir>/agent.sock` (/run/dpdk-agent, or $DPDK_AGENT_RUN_DIR).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Root of sysfs (tests point it at a fake tree).
    #[arg(long, value_name = "DIR", default_value = "/sys", hide = true)]
    pub sysfs_root: PathBuf,
    /// Where the binding is recorded, so a restarted agent can find its NIC.
    #[arg(long, value_name = "PATH", default_value = bind::DEFAULT_STATE_PATH, hide = true)]
    pub state_file: PathBuf,
}

/// Why the agent could not serve at all (data-port failures do not stop it).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is missing or invalid.
    #[error("configuration")]
    Config(#[from] ConfigError),
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
    /// TLS material could not be loaded.
    #[error("TLS")]
    Tls(#[from] tls::TlsError),
    /// tonic refused the TLS configuration or the server failed.
    #[error("gRPC server")]
    Transport(#[from] tonic::transport::Error),
    /// The listen address could not be bound in time.
    #[error("cannot listen on {addr} (retried for {waited:?})")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// How long we tried.
        waited: Duration,
        /// The last error.
        #[source]
        source: std::io::Error,
    },
    /// The local control socket could not be set up.
    #[error("control socket")]
    Control(#[from] ControlError),
    /// The async runtime or signal handlers could not be set up.
    #[error("runtime")]
    Runtime(#[source] std::io::Error),
}

/// How the data port is reached.
#[derive(Debug, Clone)]
enum DataplanePlan {
    /// A virtual device: no binding.
    Vdev {
        spec: String,
        eal_args: Vec<String>,
        ip: Ipv4Addr,
        prefix_len: u8,
    },
    /// A PCI NIC found by MAC and bound through sysfs.
    Nic {
        config: Box<AgentConfig>,
        extra_eal_args: Vec<String>,
        sysfs_root: PathBuf,
        state_file: PathBuf,
        ip: Ipv4Addr,
        prefix_len: u8,
    },
}

/// Everything `serve` decided before starting.
#[derive(Debug, Clone)]
struct Plan {
    listen: SocketAddr,
    control_socket: PathBuf,
    tls: Option<TlsPaths>,
    dataplane: DataplanePlan,
    listen_retry: Duration,
}

fn data_ip(text: &str, field: &str) -> Result<(Ipv4Addr, u8), ServeError> {
    parse_cidr(text).ok_or_else(|| {
        ServeError::Usage(format!(
            "{field} must be an IPv4 address with a prefix length 1..=32 like 10.0.1.4/24, got {text:?}"
        ))
    })
}

fn plan(args: &ServeArgs) -> Result<Plan, ServeError> {
    let vdev_mode = args.loopback || args.vdev.is_some();
    let config = match (&args.config, vdev_mode) {
        (Some(path), _) => Some(AgentConfig::load(path)?),
        (None, false) => Some(AgentConfig::load(Path::new(DEFAULT_CONFIG_PATH))?),
        (None, true) => None,
    };
    let listen = args
        .listen
        .or(config.as_ref().map(|c| c.listen))
        .ok_or_else(|| ServeError::Usage("--listen is required without --config".into()))?;
    if listen.ip().is_unspecified() {
        return Err(ServeError::Usage(format!(
            "refusing to listen on {listen}: give the management address, not a wildcard"
        )));
    }
    let tls = match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsPaths {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => config.as_ref().and_then(|c| c.tls.clone()),
    };
    let tls = match (tls, args.insecure) {
        (_, true) => None,
        (Some(tls), false) => Some(tls),
        (None, false) => {
            return Err(ServeError::Usage(
                "no TLS material: set [tls] in the configuration, pass --tls-ca/--tls-cert/--tls-key, or --insecure".into(),
            ))
        }
    };
    let data_ip_text = args
        .data_ip
        .clone()
        .or(config.as_ref().map(|c| c.data_ip.clone()))
        .unwrap_or_else(|| LOOPBACK_DATA_IP.to_owned());
    let (ip, prefix_len) = data_ip(&data_ip_text, "the data address")?;
    let config_eal_args = config
        .as_ref()
        .map(|c| c.eal_args.clone())
        .unwrap_or_default();
    let dataplane = if vdev_mode {
        let spec = args.vdev.clone().unwrap_or_else(|| "net_ring0".to_owned());
        let mut eal_args: Vec<String> =
            ["--no-huge", "--no-pci", "-l", "0", "-m", VDEV_EAL_MEMORY_MB]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        eal_args.push(format!("--vdev={spec}"));
        eal_args.push(format!("--file-prefix=dpdk-agent-{}", std::process::id()));
        eal_args.extend(config_eal_args);
        eal_args.extend(args.eal_args.iter().cloned());
        DataplanePlan::Vdev {
            spec,
            eal_args,
            ip,
            prefix_len,
        }
    } else {
        let config = config.expect("VM mode always loads a configuration");
        let mut extra_eal_args = config.eal_args.clone();
        extra_eal_args.extend(args.eal_args.iter().cloned());
        DataplanePlan::Nic {
            config: Box::new(config),
            extra_eal_args,
            sysfs_root: args.sysfs_root.clone(),
            state_file: args.state_file.clone(),
            ip,
            prefix_len,
        }
    };
    Ok(Plan {
        listen,
        control_socket: args
            .control_socket
            .clone()
            .unwrap_or_else(control::default_socket),
        tls,
        dataplane,
        listen_retry: Duration::from_secs(args.listen_retry_secs),
    })
}

/// The port is open; a binding to undo on exit, if any.
struct Dataplane {
    port: Option<DataPort>,
    handover: Option<Handover>,
    binding: Option<Binding>,
    drivers: NicDrivers,
    failure: Option<String>,
    /// The device locks when no handover holds them (the port did not open).
    locks: Option<DeviceLocks>,
}

use agent_proto::error_chain as chain;

/// EAL arguments for a bound PCI NIC in a VM.
fn vm_eal_args(binding: &Binding, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-l".into(),
        "0".into(),
        "-a".into(),
        binding.pci_address.clone(),
        "--file-prefix".into(),
        "dpdk-agent".into(),
    ];
    if binding.driver.needs_iova_pa() {
        args.push("--iova-mode=pa".into());
    }
    let sets_memory = extra.iter().any(|arg| {
        arg == "-m"
            || arg.starts_with("--socket-mem")
            || arg == "--no-huge"
            || arg.starts_with("-m")
    });
    if !sets_memory {
        args.extend(["-m".to_owned(), VM_EAL_MEMORY_MB.to_owned()]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// Binding (in a VM), EAL, the port. Blocking: runs on a blocking thread.
fn bring_up(plan: DataplanePlan) -> Dataplane {
    let mut dataplane = Dataplane {
        port: None,
        handover: None,
        binding: None,
        drivers: NicDrivers::default(),
        failure: None,
        locks: None,
    };
    let (eal_args, device, ip, prefix_len, handover_device) = match plan {
        DataplanePlan::Vdev {
            spec,
            eal_args,
            ip,
            prefix_len,
        } => {
            let name = spec.split(',').next().unwrap_or_default().to_owned();
            (eal_args, name, ip, prefix_len, Device::Vdev { spec })
        }
        DataplanePlan::Nic {
            config,
            extra_eal_args,
            sysfs_root,
            state_file,
            ip,
            prefix_len,
        } => {
            let mac = match config.data_mac_bytes() {
                Ok(mac) => mac,
                Err(error) => {
                    dataplane.failure = Some(chain(&error));
                    return dataplane;
                }
            };
            let root = SysfsRoot::new(sysfs_root);
            let request = BindRequest {
                root: &root,
                kernel: &SystemKernel,
                mac,
                preference: config.bind_driver,
                state_path: Some(&state_file),
            };
            let binding = match bind::bind(&request) {
                Ok(binding) => binding,
                Err(error) => {
                    dataplane.failure = Some(format!("binding the data NIC: {}", chain(&error)));
                    return dataplane;
                }
            };
            dataplane.drivers = NicDrivers {
                kernel_driver: binding.original_driver.clone().unwrap_or_default(),
                bound_driver: binding.driver.sysfs_name().to_owned(),
                pci_address: binding.pci_address.clone(),
            };
            let args = vm_eal_args(&binding, &extra_eal_args);
            let device = binding.pci_address.clone();
            let handover_device = Device::Nic {
                root,
                kernel: std::sync::Arc::new(SystemKernel),
                binding: binding.clone(),
                state_file: Some(state_file),
                preference: config.bind_driver,
            };
            dataplane.binding = Some(binding);
            (args, device, ip, prefix_len, handover_device)
        }
    };
    let run_dir = devlock::run_dir();
    let locks = match DeviceLocks::for_eal_args(&eal_args, &run_dir, "dpdk-agent serve") {
        Ok(locks) => locks,
        Err(error) => {
            dataplane.failure = Some(format!("locking the data device: {}", chain(&error)));
            return dataplane;
        }
    };
    let eal = match Eal::init(&eal_args) {
        Ok(eal) => eal,
        Err(error) => {
            dataplane.failure = Some(format!("EAL: {}", chain(&error)));
            return dataplane;
        }
    };
    let spec = DataPortSpec::new(PortSelector::Name(device.clone()), ip, prefix_len);
    match DataPort::open(&eal, &spec) {
        Ok(port) => {
            let details = port.details();
            tracing::info!(
                device = %details.device,
                driver = %details.driver,
                mac = %agent_proto::config::format_mac(&details.mac),
                ip = %format!("{ip}/{prefix_len}"),
                link_up = details.link_up,
                "data port open"
            );
            dataplane.port = Some(port);
            let mut handover = Handover::new(eal, spec, handover_device);
            handover.hold_locks(locks, eal_args, run_dir);
            dataplane.handover = Some(handover);
        }
        Err(error) => {
            dataplane.failure = Some(format!("opening data port {device}: {}", chain(&error)));
            // EAL keeps the device probed: keep it locked until the agent exits.
            dataplane.locks = Some(locks);
        }
    }
    dataplane
}

async fn listen_with_retry(addr: SocketAddr, retry: Duration) -> Result<TcpListener, ServeError> {
    let start = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(source) => {
                if start.elapsed() >= retry {
                    return Err(ServeError::Listen {
                        addr,
                        waited: start.elapsed(),
                        source,
                    });
                }
                if attempts % 25 == 0 {
                    tracing::info!(%addr, error = %source, "listen address not ready, retrying");
                }
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn terminated() -> Result<&'static str, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn serve(plan: Plan) -> Result<(), ServeError> {
    // Install the handlers first: a SIGTERM during start-up must still give the NIC back.
    let signal = tokio::spawn(terminated());

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let options = ServiceOptions {
        system_checks: matches!(plan.dataplane, DataplanePlan::Nic { .. }),
    };
    let service = AgentService::new(health_reporter, options).await;

    let bring_up_task = {
        let service = service.clone();
        let dataplane_plan = plan.dataplane.clone();
        tokio::spawn(async move {
            let dataplane = tokio::task::spawn_blocking(move || bring_up(dataplane_plan))
                .await
                .unwrap_or_else(|error| Dataplane {
                    port: None,
                    handover: None,
                    binding: None,
                    drivers: NicDrivers::default(),
                    failure: Some(format!("data port bring-up panicked: {error}")),
                    locks: None,
                });
            let drivers = dataplane.drivers.clone();
            if let Some(handover) = dataplane.handover {
                service.set_handover(handover);
            }
            match (dataplane.port, dataplane.failure) {
                (Some(port), _) => service.set_ready(port, drivers).await,
                (None, failure) => {
                    let reason = failure.unwrap_or_else(|| "no data port".to_owned());
                    service.set_failed(reason, drivers).await;
                }
            }
            (dataplane.binding, dataplane.locks)
        })
    };

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(agent_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| ServeError::Usage(format!("server reflection: {error}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(agent_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| ServeError::Usage(format!("server reflection: {error}")))?;

    // Keepalive pings find connections whose client vanished (an established
    // connection holds one of connections::MAX_CONNECTIONS places).
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(Some(64))
        .concurrency_limit_per_connection(64);
    let tls_config = match &plan.tls {
        Some(paths) => Some(tls::server_config(paths)?),
        None => {
            tracing::warn!("serving WITHOUT TLS (--insecure)");
            None
        }
    };

    // The control socket: the same Agent service for root in the VM, no TLS.
    let control_listener = control::listen(&plan.control_socket)?;
    tracing::info!(path = %plan.control_socket.display(), "serving the local control socket");
    let (control_stop_tx, control_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let control_server = tokio::spawn(
        Server::builder()
            .add_service(health_service.clone())
            .add_service(
                AgentServer::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
            )
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(control_listener),
                async {
                    let _ = control_stop_rx.await;
                },
            ),
    );

    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let listen = plan.listen;
    let retry = plan.listen_retry;
    let agent = AgentServer::new(service.clone()).max_decoding_message_size(MAX_REQUEST_BYTES);
    let tls_on = plan.tls.is_some();
    let server = async move {
        let listener = listen_with_retry(listen, retry).await?;
        tracing::info!(addr = %listen, tls = tls_on, "serving gRPC");
        builder
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(agent)
            .serve_with_incoming_shutdown(connections::admitted(listener, tls_config), async {
                let _ = shutdown_rx.await;
            })
            .await?;
        Ok::<(), ServeError>(())
    };
    tokio::pin!(server);

    let mut signal = signal;
    // Some(result) when the server ended by itself (it failed to listen, or broke).
    let server_ended = tokio::select! {
        result = &mut server => Some(result),
        received = &mut signal => {
            let name = received
                .map_err(|error| ServeError::Runtime(std::io::Error::other(error)))??;
            tracing::info!(signal = name, "shutting down");
            None
        }
    };

    // Stop workloads and take the port back before the server drains, so open
    // streams end with their results.
    let (binding, _unopened_port_locks) =
        match tokio::time::timeout(Duration::from_secs(30), bring_up_task).await {
            Ok(Ok(outcome)) => outcome,
            _ => {
                tracing::error!("data port bring-up did not finish; the NIC is left as it is");
                (None, None)
            }
        };
    let port = service.shutdown().await;
    if server_ended.is_none() {
        let _ = control_stop_tx.send(());
        let _ = shutdown_tx.send(());
        if tokio::time::timeout(DRAIN_TIMEOUT, control_server)
            .await
            .is_err()
        {
            tracing::warn!("control socket connections did not close within {DRAIN_TIMEOUT:?}");
        }
        let _ = std::fs::remove_file(&plan.control_socket);
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("connections did not close within {DRAIN_TIMEOUT:?}");
        }
    }
    drop(port);
    if let Some(binding) = binding {
        let root = match &plan.dataplane {
            DataplanePlan::Nic { sysfs_root, .. } => SysfsRoot::new(sysfs_root),
            DataplanePlan::Vdev { .. } => SysfsRoot::system(),
        };
        let state_file = match &plan.dataplane {
            DataplanePlan::Nic { state_file, .. } => Some(state_file.clone()),
            DataplanePlan::Vdev { .. } => None,
        };
        let restored = tokio::task::spawn_blocking(move || {
            bind::restore(&root, &binding, state_file.as_deref())
        })
        .await;
        match restored {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(error = %chain(&error), "cannot give the NIC back"),
            Err(error) => tracing::error!(%error, "giving the NIC back panicked"),
        }
    }
    server_ended.unwrap_or(Ok(()))
}

/// Runs `serve` until SIGTERM / SIGINT.
pub fn run(args: &ServeArgs) -> Result<(), ServeError> {
    let plan = plan(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("agent-rt")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bind::DpdkDriver;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(list: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("serve").chain(list.iter().copied()))
            .unwrap()
            .serve
    }

    #[test]
    fn loopback_needs_no_config_and_no_hugepages() {
        let plan = plan(&args(&[
            "--loopback",
            "--insecure",
            "--listen",
            "127.0.0.1:5000",
            "--eal-arg=--log-level=3",
        ]))
        .unwrap();
        assert!(plan.tls.is_none());
        let DataplanePlan::Vdev {
            spec, eal_args, ip, ..
        } = plan.dataplane
        else {
            panic!("not a vdev plan");
        };
        assert_eq!(spec, "net_ring0");
        assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 1));
        assert!(eal_args.contains(&"--no-huge".to_owned()));
        assert!(eal_args.contains(&"--vdev=net_ring0".to_owned()));
        assert_eq!(eal_args.last().unwrap(), "--log-level=3");
    }

    #[test]
    fn refuses_plaintext_wildcards_and_bad_addresses() {
        let error = plan(&args(&["--loopback", "--listen", "127.0.0.1:5000"])).unwrap_err();
        assert!(error.to_string().contains("--insecure"), "{error}");
        let error = plan(&args(&[
            "--loopback",
            "--insecure",
            "--listen",
            "0.0.0.0:5000",
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("wildcard"), "{error}");
        let error = plan(&args(&[
            "--loopback",
            "--insecure",
            "--listen",
            "127.0.0.1:5000",
            "--data-ip",
            "10.0.0.1",
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("10.0.0.1"), "{error}");
        let error = plan(&args(&["--loopback", "--insecure"])).unwrap_err();
        assert!(error.to_string().contains("--listen"), "{error}");
    }

    #[test]
    fn vm_eal_arguments() {
        let binding = Binding {
            mac: "52:54:00:aa:00:02".into(),
            pci_address: "0000:00:04.0".into(),
            ifname: Some("eth1".into()),
            original_driver: Some("virtio-pci".into()),
            driver: DpdkDriver::UioPciGeneric,
        };
        let args = vm_eal_args(&binding, &["--log-level=7".into()]);
        assert_eq!(
            args,
            [
                "-l",
                "0",
                "-a",
                "0000:00:04.0",
                "--file-prefix",
                "dpdk-agent",
                "--iova-mode=pa",
                "-m",
                "64",
                "--log-level=7"
            ]
        );
        let args = vm_eal_args(&binding, &["--socket-mem=64".into()]);
        assert!(!args.contains(&"64".to_owned()));
    }
}
