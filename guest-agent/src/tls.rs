//! The agent's side of mutual TLS: its own certificate, and the environment's CA
//! that every client certificate must chain to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_proto::config::TlsPaths;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

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
    /// A PEM block could not be decoded.
    #[error("{path}: bad PEM {what}")]
    BadPem {
        /// What was expected.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The CA certificate cannot verify clients.
    #[error("the CA certificate {path} cannot verify client certificates")]
    ClientVerifier {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// rustls cannot build a configuration from its ring provider.
    #[error("TLS protocol versions")]
    Provider(#[source] rustls::Error),
    /// rustls refused the certificate and key.
    #[error("the certificate {cert} and key {key} do not make a TLS identity")]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
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

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read_pem(what, path, "CERTIFICATE-----")?;
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::BadPem {
            what,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NotPem {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Server TLS that requires a client certificate signed by `paths.ca` and speaks
/// HTTP/2 (ALPN h2), as tonic's own server TLS did.
pub fn server_config(paths: &TlsPaths) -> Result<Arc<ServerConfig>, TlsError> {
    let ca = certificates("CA certificate", &paths.ca)?;
    let cert = certificates("certificate", &paths.cert)?;
    let key_text = read_pem("private key", &paths.key, "PRIVATE KEY-----")?;
    let key =
        PrivateKeyDer::from_pem_slice(key_text.as_bytes()).map_err(|source| TlsError::BadPem {
            what: "private key",
            path: paths.key.clone(),
            source,
        })?;
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(ca);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| TlsError::ClientVerifier {
            path: paths.ca.clone(),
            source,
        })?;
    let identity_error = |source| TlsError::Identity {
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Provider)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert, key)
        .map_err(identity_error)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
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
