//! The local control socket: `serve` also answers the Agent service on a Unix
//! socket only root can reach (directory 0700, socket 0600), without TLS, so that
//! `dpdk-agent --selftest` run in the VM asks the serving agent, which owns the
//! data port, instead of starting a second DPDK process on it.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_proto::v1;
use agent_proto::v1::agent_client::AgentClient;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Endpoint, Uri};

/// The socket's file name in the run directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// The default control socket: `<run dir>/agent.sock`.
pub fn default_socket() -> PathBuf {
    crate::devlock::run_dir().join(SOCKET_NAME)
}

/// Why the control socket could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Creating the directory, removing a stale socket, binding or chmod failed.
    #[error("control socket {path}: cannot {action}")]
    Setup {
        /// What was being done.
        action: &'static str,
        /// The socket or its directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Nobody answers on the socket.
    #[error("cannot connect to the serving agent at {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The agent answered with an error.
    #[error("the serving agent refused the selftest: {0}")]
    Rpc(String),
}

/// Binds the control socket at `path` for root only, replacing a stale one.
pub fn listen(path: &Path) -> Result<UnixListener, ControlError> {
    let setup = |action, path: &Path| {
        let path = path.to_owned();
        move |source| ControlError::Setup {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(setup("create the directory", dir))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(setup("remove the old socket", path)(error)),
    }
    let listener = UnixListener::bind(path).map_err(setup("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(setup("restrict", path))?;
    Ok(listener)
}

/// A gRPC client over the control socket at `path`.
pub async fn connect(path: &Path) -> Result<AgentClient<tonic::transport::Channel>, ControlError> {
    let socket = path.to_owned();
    // The URI is required by the API and unused: the connector ignores it.
    let channel = Endpoint::from_static("http://control.socket")
        .connect_timeout(Duration::from_secs(2))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ControlError::Connect {
            path: path.to_owned(),
            source,
        })?;
    Ok(AgentClient::new(channel))
}

/// Runs the selftest through the serving agent at `path`.
pub async fn selftest(
    path: &Path,
    peer: Option<std::net::Ipv4Addr>,
    timeout: Duration,
) -> Result<v1::SelftestReply, ControlError> {
    let mut client = connect(path).await?;
    let request = v1::SelftestRequest {
        peer_ip: peer.map(|ip| ip.to_string()).unwrap_or_default(),
        timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
    };
    client
        .selftest(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| ControlError::Rpc(format!("{:?}: {}", status.code(), status.message())))
}
