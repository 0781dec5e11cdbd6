//! The environment's TLS material: one CA per lab, made at `dpdkhost up`, that signs
//! each agent's server certificate and the host's client certificate. The agent only
//! accepts clients whose certificate chains to this CA (mutual TLS).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why TLS material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to generate, sign or parse.
    #[error("cannot {what}")]
    Rcgen {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
}

fn rcgen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Rcgen { what, source }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// The environment's certificate authority.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// How long a certificate is valid from its issue: a lab lives for hours or days, but an
/// environment's CA is kept until `down`, and its certificates must not expire under a
/// lab that someone leaves up.
pub const VALIDITY: time::Duration = time::Duration::days(3650);
/// How far back a certificate's validity starts: a guest's clock, set from the host's
/// RTC at boot and not synced under TCG, may run a little behind the host's.
pub const CLOCK_SKEW_ALLOWANCE: time::Duration = time::Duration::hours(1);

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + VALIDITY;
}

impl CertificateAuthority {
    /// Makes a new CA named `common_name` with a fresh ECDSA P-256 key.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate().map_err(rcgen_err("generate the CA key"))?;
        let params = Self::params(common_name);
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("self-sign the CA"))?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    fn params(common_name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        name.push(DnType::OrganizationName, "dpdkhost");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params);
        params
    }

    /// Loads a CA written earlier from [`Self::cert_pem`] and [`Self::key_pem`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_err("read the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(rcgen_err("read the CA certificate"))?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a server certificate valid for `dns_names` and `ips`.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::new(dns_names.to_vec())
            .map_err(rcgen_err("use the server names"))?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        if let Some(first) = dns_names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params, "sign the server certificate")
    }

    /// Issues a client certificate named `common_name`.
    pub fn issue_client(&self, common_name: &str) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params, "sign the client certificate")
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        what: &'static str,
    ) -> Result<IssuedCert, PkiError> {
        validity(&mut params);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(rcgen_err("generate a key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err(what))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_survives_a_pem_round_trip_and_signs() {
        let ca = CertificateAuthority::generate("dpdkhost test CA").unwrap();
        let again = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let server = again
            .issue_server(&["vm1".into()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server.key_pem.contains("PRIVATE KEY"));
        let client = ca.issue_client("dpdkhost").unwrap();
        assert_ne!(client.cert_pem, server.cert_pem);
    }

    #[test]
    fn certificates_are_valid_for_ten_years_from_issue() {
        let ca = CertificateAuthority::generate("dpdkhost test CA").unwrap();
        let server = ca.issue_server(&["vm1".into()], &[]).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for pem in [ca.cert_pem(), server.cert_pem.as_str()] {
            let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
            let cert = pem.parse_x509().unwrap();
            let validity = cert.validity();
            let (from, to) = (
                validity.not_before.timestamp(),
                validity.not_after.timestamp(),
            );
            let skew = CLOCK_SKEW_ALLOWANCE.whole_seconds();
            assert!(
                (now - skew - 60..=now - skew + 60).contains(&from),
                "not before {from}, now {now}"
            );
            let ten_years = VALIDITY.whole_seconds();
            assert!(
                (now + ten_years - 60..=now + ten_years + 60).contains(&to),
                "not after {to}, now {now}"
            );
        }
    }
}
