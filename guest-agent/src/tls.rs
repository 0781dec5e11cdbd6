//! The agent's side of mutual TLS: its own certificate, and the environment's CA
//! that every client certificate must chain to.

use std::path::{Path, PathBuf};

use agent_proto::config::TlsPaths;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Why the TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}")]
    Read {
        /// "CA certificate", "certificate", "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM block of the expected kind.
    #[error("{path} holds no PEM {what}")]
    NotPem {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
}

fn read_pem(what: &'static str, path: &Path, marker: &str) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    if !text.contains("-----BEGIN ") || !text.contains(marker) {
        return Err(TlsError::NotPem {
            what,
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// Server TLS that requires a client certificate signed by `paths.ca`.
pub fn server_config(paths: &TlsPaths) -> Result<ServerTlsConfig, TlsError> {
    let ca = read_pem("CA certificate", &paths.ca, "CERTIFICATE-----")?;
    let cert = read_pem("certificate", &paths.cert, "CERTIFICATE-----")?;
    let key = read_pem("private key", &paths.key, "PRIVATE KEY-----")?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_pem_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").unwrap();
        let paths = TlsPaths {
            ca: garbage.clone(),
            cert: dir.path().join("missing.pem"),
            key: garbage.clone(),
        };
        let error = server_config(&paths).unwrap_err();
        assert!(matches!(
            error,
            TlsError::NotPem {
                what: "CA certificate",
                ..
            }
        ));
        assert!(error.to_string().contains("garbage.pem"), "{error}");

        let ca = agent_proto::pki::CertificateAuthority::generate("test CA").unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let error = server_config(&TlsPaths {
            ca: ca_path,
            ..paths
        })
        .unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }
}
