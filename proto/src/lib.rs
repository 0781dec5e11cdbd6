//! The dpdk-agent gRPC API shared by the agent (server) and dpdkhost (client):
//! generated message and service types, the agent's configuration file format, the
//! environment's TLS material, and the client the host drives agents with.

#[cfg(feature = "cli-docs")]
pub mod cli_docs;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod file_error;
pub mod histogram;
pub mod lockfile;
pub mod mac;

pub use mac::MacAddr;
#[cfg(feature = "pki")]
pub mod pki;

/// An error and its causes on one line, joined by ": " (each cause's message once:
/// no variant repeats its source's text).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Generated from `agent.proto` (package `dpdkhost.agent.v1`).
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("dpdkhost.agent.v1");
}

/// Encoded `FileDescriptorSet` of agent.proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("agent_descriptor");

/// The TCP port the agent serves on unless its configuration says otherwise.
pub const DEFAULT_AGENT_PORT: u16 = 50051;

/// The service name the agent reports through grpc.health.v1.
pub const HEALTH_SERVICE_NAME: &str = "dpdkhost.agent.v1.Agent";
