//! What every command receives: configuration, environment name, paths, the JSON flag;
//! and the agents of the environment, ready to connect to.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use agent_proto::client::Security;

use crate::config::{self, Config, ConfigError};
use crate::keys::{self, KeysError};
use crate::provision::{Libvirt, ProvisionError};
use crate::state::{Paths, State, StateError, VmState};

/// Why a command's context could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The configuration is invalid.
    #[error("configuration")]
    Config(#[from] ConfigError),
    /// State could not be read.
    #[error("environment state")]
    State(#[from] StateError),
    /// TLS material is missing.
    #[error("environment keys")]
    Keys(#[from] KeysError),
    /// The environment has not been brought up.
    #[error("environment {env:?} is not up (no {file}): run `dpdkhost --env {env} up`")]
    NotUp {
        /// Environment.
        env: String,
        /// The state file.
        file: PathBuf,
    },
    /// No such VM.
    #[error("no VM {which:?} in environment {env:?} (VMs: {known})")]
    NoSuchVm {
        /// What was asked for.
        which: String,
        /// Environment.
        env: String,
        /// What exists.
        known: String,
    },
}

/// One VM's agent, ready to connect to with `AgentClient::connect(addr, &security, ..)`.
#[derive(Debug, Clone)]
pub struct AgentEndpoint {
    /// 1-based index.
    pub index: u8,
    /// Short name (`vm1`), also the certificate's DNS name.
    pub name: String,
    /// Where the host reaches the agent.
    pub addr: SocketAddr,
    /// The VM's data address.
    pub data_ip: Ipv4Addr,
    /// Its prefix length.
    pub data_prefix: u8,
    /// The data address of the VM at the other end of its link.
    pub peer_ip: Option<Ipv4Addr>,
    /// Mutual TLS with the environment's CA and the host's client certificate.
    pub security: Security,
    /// user mode: the VM's end of the UDP data link on 127.0.0.1 (its drops are link loss).
    pub udp_local: Option<u16>,
}

/// Everything a command needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct Context {
    /// The validated configuration.
    pub config: Config,
    /// The file it came from, if any.
    pub config_path: Option<PathBuf>,
    /// Environment name (`--env`).
    pub env: String,
    /// `--json`: machine-readable output.
    pub json: bool,
    /// State and cache directories.
    pub paths: Paths,
}

impl Context {
    /// Loads the configuration (`--config`, else ./dpdkhost.toml when present, else
    /// defaults) for environment `env`.
    pub fn load(
        config_path: Option<PathBuf>,
        env: &str,
        json: bool,
    ) -> Result<Context, ContextError> {
        config::validate_env_name(env)?;
        let config_path = config_path.or_else(|| {
            let p = PathBuf::from(config::DEFAULT_CONFIG_FILE);
            p.is_file().then_some(p)
        });
        let config = Config::load(config_path.as_deref())?;
        Ok(Context {
            config,
            config_path,
            env: env.to_owned(),
            json,
            paths: Paths::for_env(env)?,
        })
    }

    /// state.json, if the environment was brought up.
    pub fn state(&self) -> Result<Option<State>, StateError> {
        State::load(&self.paths)
    }

    /// state.json, or an error telling the user to run `up`.
    pub fn require_state(&self) -> Result<State, ContextError> {
        self.state()?.ok_or_else(|| ContextError::NotUp {
            env: self.env.clone(),
            file: self.paths.state_file(),
        })
    }

    /// The libvirt URI: the one the environment was made on, else the configured one.
    pub fn libvirt_uri(&self) -> String {
        match self.state() {
            Ok(Some(s)) => s.libvirt_uri,
            _ => self.config.libvirt_uri.clone(),
        }
    }

    /// A libvirt connection.
    pub fn connect(&self) -> Result<Libvirt, ProvisionError> {
        Libvirt::open(&self.libvirt_uri())
    }

    /// Every VM's agent endpoint, in index order.
    pub fn agents(&self) -> Result<Vec<AgentEndpoint>, ContextError> {
        let state = self.require_state()?;
        state
            .vms
            .iter()
            .map(|vm| {
                let (data_ip, data_prefix) = agent_proto::config::parse_cidr(&vm.data_ip)
                    .unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
                Ok(AgentEndpoint {
                    index: vm.index,
                    name: vm.name.clone(),
                    addr: vm.agent,
                    data_ip,
                    data_prefix,
                    peer_ip: vm.peer_ip,
                    security: keys::client_security(&self.paths, &vm.name)?,
                    udp_local: vm.udp_local,
                })
            })
            .collect()
    }

    /// One VM's agent endpoint, by index (`1`) or name (`vm1`).
    pub fn agent(&self, which: &str) -> Result<AgentEndpoint, ContextError> {
        let agents = self.agents()?;
        let known = agents
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        agents
            .into_iter()
            .find(|a| a.name == which || a.index.to_string() == which)
            .ok_or_else(|| ContextError::NoSuchVm {
                which: which.to_owned(),
                env: self.env.clone(),
                known,
            })
    }
}

impl Context {
    /// One VM of `state`, by index (`1`) or name (`vm1`); the error lists the VMs.
    pub fn vm<'s>(&self, state: &'s State, which: &str) -> Result<&'s VmState, ContextError> {
        state.vm(which).ok_or_else(|| ContextError::NoSuchVm {
            which: which.to_owned(),
            env: self.env.clone(),
            known: state
                .vms
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// A multi-threaded tokio runtime for commands that talk gRPC.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

pub use agent_proto::error_chain as chain;
