//! Key material of an environment: the SSH user key (generated unless configured), each
//! VM's pre-generated SSH host key (pinned in known_hosts), the environment's CA, the
//! host's client certificate, and the agents' server certificates.

use std::path::{Path, PathBuf};

use agent_proto::client::{ClientTls, Security};
use agent_proto::pki::{CertificateAuthority, IssuedCert, PkiError};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::config::SshKeySource;
use crate::state::{self, Paths, StateError};

/// Why key material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing a key file failed.
    #[error("key file")]
    State(#[from] StateError),
    /// An SSH key could not be generated or encoded.
    #[error("SSH key {what}")]
    Ssh {
        /// Which key.
        what: String,
        /// The cause.
        #[source]
        source: ssh_key::Error,
    },
    /// A certificate could not be made or loaded.
    #[error("TLS material: {what}")]
    Pki {
        /// Which one.
        what: String,
        /// The cause.
        #[source]
        source: PkiError,
    },
    /// The environment has no CA yet (`up` makes it).
    #[error("no CA in {0}: run `dpdkhost up` first")]
    NoCa(PathBuf),
}

/// An OpenSSH key pair as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyPair {
    /// OpenSSH private key (PEM-like).
    pub private: String,
    /// `ssh-ed25519 AAAA... comment`.
    pub public: String,
}

fn generate_ed25519(comment: &str) -> Result<SshKeyPair, KeysError> {
    let ssh = |source| KeysError::Ssh {
        what: comment.to_owned(),
        source,
    };
    let mut key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).map_err(ssh)?;
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).map_err(ssh)?.to_string();
    let public = key.public_key().to_openssh().map_err(ssh)?;
    Ok(SshKeyPair { private, public })
}

/// Loads the key pair at `private`/`public`, generating it when missing.
fn load_or_generate(private: &Path, public: &Path, comment: &str) -> Result<SshKeyPair, KeysError> {
    if private.exists() && public.exists() {
        return Ok(SshKeyPair {
            private: state::read_text(private)?,
            public: state::read_text(public)?.trim().to_owned(),
        });
    }
    let pair = generate_ed25519(comment)?;
    state::write_private(private, pair.private.as_bytes())?;
    state::write_private(public, format!("{}\n", pair.public).as_bytes())?;
    Ok(pair)
}

/// The user's SSH public key for the VMs and the identity file to use, if generated.
pub fn user_key(
    paths: &Paths,
    source: &SshKeySource,
    env: &str,
) -> Result<(String, Option<PathBuf>), KeysError> {
    state::ensure_dir(&paths.state_dir)?;
    match source {
        SshKeySource::Provided(public) => Ok((public.clone(), None)),
        SshKeySource::Generated => {
            let pair = load_or_generate(
                &paths.ssh_key(),
                &paths.ssh_pub(),
                &format!("dpdkhost-{env}"),
            )?;
            Ok((pair.public, Some(paths.ssh_key())))
        }
    }
}

/// VM `name`'s SSH host key, generated once per environment and VM.
pub fn host_key(paths: &Paths, name: &str) -> Result<SshKeyPair, KeysError> {
    state::ensure_dir(&paths.state_dir)?;
    let private = paths.host_key(name);
    let public = private.with_extension(format!("{name}.pub"));
    load_or_generate(&private, &public, &format!("root@{name}"))
}

/// Writes known_hosts pinning each `(alias, public key)`; ssh uses `HostKeyAlias`.
pub fn write_known_hosts(paths: &Paths, entries: &[(String, String)]) -> Result<(), KeysError> {
    let mut text = String::new();
    for (alias, key) in entries {
        // Drop the comment: known_hosts lines are `host type base64`.
        let mut parts = key.split_whitespace();
        let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
            continue;
        };
        text.push_str(&format!("{alias} {kind} {b64}\n"));
    }
    state::write_private(&paths.known_hosts(), text.as_bytes())?;
    Ok(())
}

/// The environment's CA, created on first use.
pub fn ensure_ca(paths: &Paths, env: &str) -> Result<CertificateAuthority, KeysError> {
    state::ensure_dir(&paths.state_dir)?;
    if paths.ca_cert().exists() && paths.ca_key().exists() {
        return load_ca(paths);
    }
    let ca = CertificateAuthority::generate(&format!("dpdkhost {env} CA")).map_err(|source| {
        KeysError::Pki {
            what: "generate the CA".into(),
            source,
        }
    })?;
    state::write_private(&paths.ca_key(), ca.key_pem().as_bytes())?;
    state::write_private(&paths.ca_cert(), ca.cert_pem().as_bytes())?;
    // A new CA invalidates any client certificate from an older one.
    let client = ca
        .issue_client("dpdkhost")
        .map_err(|source| KeysError::Pki {
            what: "issue the client certificate".into(),
            source,
        })?;
    state::write_private(&paths.client_key(), client.key_pem.as_bytes())?;
    state::write_private(&paths.client_cert(), client.cert_pem.as_bytes())?;
    Ok(ca)
}

/// The environment's existing CA.
pub fn load_ca(paths: &Paths) -> Result<CertificateAuthority, KeysError> {
    if !paths.ca_cert().exists() {
        return Err(KeysError::NoCa(paths.state_dir.clone()));
    }
    let cert = state::read_text(&paths.ca_cert())?;
    let key = state::read_text(&paths.ca_key())?;
    CertificateAuthority::from_pem(&cert, &key).map_err(|source| KeysError::Pki {
        what: "load the CA".into(),
        source,
    })
}

/// A server certificate for VM `name` (DNS SAN = the short name).
pub fn issue_agent_cert(
    ca: &CertificateAuthority,
    name: &str,
    ip: std::net::IpAddr,
) -> Result<IssuedCert, KeysError> {
    ca.issue_server(&[name.to_owned()], &[ip])
        .map_err(|source| KeysError::Pki {
            what: format!("issue {name}'s server certificate"),
            source,
        })
}

/// Mutual-TLS settings for talking to VM `name`'s agent.
pub fn client_security(paths: &Paths, name: &str) -> Result<Security, KeysError> {
    if !paths.ca_cert().exists() {
        return Err(KeysError::NoCa(paths.state_dir.clone()));
    }
    Ok(Security::Tls(ClientTls {
        ca_pem: state::read_text(&paths.ca_cert())?,
        cert_pem: state::read_text(&paths.client_cert())?,
        key_pem: state::read_text(&paths.client_key())?,
        server_name: name.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths {
            state_dir: dir.join("env"),
            image_cache: dir.join("img"),
        }
    }

    #[test]
    fn generated_keys_are_ed25519_stable_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let (public, identity) = user_key(&p, &SshKeySource::Generated, "t").unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        assert_eq!(identity.as_deref(), Some(p.ssh_key().as_path()));
        let (again, _) = user_key(&p, &SshKeySource::Generated, "t").unwrap();
        assert_eq!(public, again, "a second call reuses the key");
        let parsed =
            PrivateKey::from_openssh(std::fs::read_to_string(p.ssh_key()).unwrap()).unwrap();
        assert_eq!(parsed.public_key().to_openssh().unwrap(), public);
        let (given, none) = user_key(
            &p,
            &SshKeySource::Provided("ssh-ed25519 AAAAX me".into()),
            "t",
        )
        .unwrap();
        assert_eq!((given.as_str(), none), ("ssh-ed25519 AAAAX me", None));
    }

    #[test]
    fn host_keys_differ_per_vm_and_known_hosts_pins_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let a = host_key(&p, "vm1").unwrap();
        let b = host_key(&p, "vm2").unwrap();
        assert_ne!(a.public, b.public);
        assert_eq!(host_key(&p, "vm1").unwrap(), a);
        assert!(a.private.contains("OPENSSH PRIVATE KEY"));
        write_known_hosts(&p, &[("dpdkhost-t-vm1".into(), a.public.clone())]).unwrap();
        let kh = std::fs::read_to_string(p.known_hosts()).unwrap();
        let b64 = a.public.split_whitespace().nth(1).unwrap();
        assert_eq!(kh, format!("dpdkhost-t-vm1 ssh-ed25519 {b64}\n"));
    }

    #[test]
    fn ca_is_made_once_and_gives_client_security() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        assert!(matches!(
            client_security(&p, "vm1"),
            Err(KeysError::NoCa(_))
        ));
        let ca = ensure_ca(&p, "t").unwrap();
        let again = ensure_ca(&p, "t").unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem());
        let cert = issue_agent_cert(&ca, "vm1", "10.0.2.15".parse().unwrap()).unwrap();
        assert!(cert.cert_pem.contains("BEGIN CERTIFICATE"));
        match client_security(&p, "vm1").unwrap() {
            Security::Tls(tls) => {
                assert_eq!(tls.server_name, "vm1");
                assert_eq!(tls.ca_pem, ca.cert_pem());
                assert!(tls.key_pem.contains("PRIVATE KEY"));
            }
            Security::Insecure => panic!("expected TLS"),
        }
    }
}
