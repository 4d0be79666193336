//! TLS: the serving certificate (loaded, checked, swappable), a self-signed one for local use, and mTLS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: not a PEM certificate chain: {message}")]
    BadCertificate { path: String, message: String },
    #[error("{path}: no PEM private key found ({message})")]
    BadKey { path: String, message: String },
    #[error("{cert} and {key} do not belong together: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
    #[error("{path}: the certificate cannot be read: {message}")]
    Unparseable { path: String, message: String },
    #[error("{path}: no CA certificate found")]
    NoClientCa { path: String },
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("self-signed certificate: {0}")]
    Generate(String),
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate and key that belong together, with what the server reports about them.
#[derive(Clone)]
pub struct ServingCert {
    pub key: Arc<CertifiedKey>,
    /// `notAfter` of the leaf certificate.
    pub not_after: OffsetDateTime,
    /// The leaf's serial number, in hex.
    pub serial: String,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The leaf certificate's `notAfter` and serial number.
fn leaf_facts(der: &CertificateDer<'_>, path: &str) -> Result<(OffsetDateTime, String), TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| TlsError::Unparseable {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let not_after = cert.validity().not_after.to_datetime();
    let serial = cert.tbs_certificate.raw_serial_as_string().replace(':', "");
    Ok((not_after, serial))
}

impl ServingCert {
    /// Builds a serving certificate from PEM text, checking that the chain parses, the key parses, and the
    /// key belongs to the leaf certificate. `cert_name` and `key_name` name the sources in errors.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_name: &str,
        key_name: &str,
        provider: &CryptoProvider,
    ) -> Result<ServingCert, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::BadCertificate {
                path: cert_name.to_owned(),
                message: e.to_string(),
            })?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::NoCertificate {
                path: cert_name.to_owned(),
            });
        };
        let (not_after, serial) = leaf_facts(leaf, cert_name)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
            path: key_name.to_owned(),
            message: e.to_string(),
        })?;
        let signing_key =
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| TlsError::BadKey {
                    path: key_name.to_owned(),
                    message: e.to_string(),
                })?;
        let certified = CertifiedKey::new(chain, signing_key);
        // Strict: a pair whose match cannot be confirmed is refused too.
        certified.keys_match().map_err(|e| TlsError::Mismatch {
            cert: cert_name.to_owned(),
            key: key_name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(ServingCert {
            key: Arc::new(certified),
            not_after,
            serial,
        })
    }

    /// Loads a serving certificate from PEM files.
    pub fn load(
        cert: &Path,
        key: &Path,
        provider: &CryptoProvider,
    ) -> Result<ServingCert, TlsError> {
        ServingCert::from_pem(
            &read(cert)?,
            &read(key)?,
            &cert.display().to_string(),
            &key.display().to_string(),
            provider,
        )
    }
}

/// A self-signed CA and a serving certificate it signed, for `localhost` and `127.0.0.1`.
pub struct SelfSigned {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a CA and a serving certificate for `localhost` and `127.0.0.1`, valid for 30 days.
pub fn self_signed() -> Result<SelfSigned, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "vigil self-signed CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(30);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(30);
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    Ok(SelfSigned {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The certificate in force, swappable while the server runs: new handshakes get the new one, and
/// connections already open keep theirs. Until one is loaded, handshakes fail.
#[derive(Debug, Default)]
pub struct CertStore {
    current: ArcSwapOption<ServingCert>,
}

impl CertStore {
    /// A store serving `cert`.
    pub fn new(cert: ServingCert) -> CertStore {
        let store = CertStore::default();
        store.replace(cert);
        store
    }

    /// The certificate in force, if one is loaded.
    pub fn current(&self) -> Option<Arc<ServingCert>> {
        self.current.load_full()
    }

    /// Puts `cert` in force for new connections.
    pub fn replace(&self, cert: ServingCert) {
        self.current.store(Some(Arc::new(cert)));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|c| c.key.clone())
    }
}

/// Builds the server's TLS configuration: TLS 1.2 and 1.3 with rustls defaults, ALPN for `h2` and
/// `http/1.1`, and client certificates signed by `client_ca` when it is given.
pub fn server_config(
    store: Arc<CertStore>,
    client_ca: Option<&PathBuf>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let name = path.display().to_string();
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(path)?) {
                let cert = cert.map_err(|e| TlsError::BadCertificate {
                    path: name.clone(),
                    message: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: name.clone(),
                    message: e.to_string(),
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoClientCa { path: name });
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn self_signed_pair_loads_and_reports_its_expiry() {
        let s = self_signed().unwrap();
        let cert = ServingCert::from_pem(
            s.cert_pem.as_bytes(),
            s.key_pem.as_bytes(),
            "c",
            "k",
            &provider(),
        )
        .unwrap();
        let days = (cert.not_after - OffsetDateTime::now_utc()).whole_days();
        assert!((29..=30).contains(&days), "{days}");
        assert!(!cert.serial.is_empty());
    }

    #[test]
    fn mismatched_and_broken_pairs_are_refused() {
        let a = self_signed().unwrap();
        let b = self_signed().unwrap();
        let err = ServingCert::from_pem(
            a.cert_pem.as_bytes(),
            b.key_pem.as_bytes(),
            "a.crt",
            "b.key",
            &provider(),
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        let half = &a.cert_pem.as_bytes()[..a.cert_pem.len() / 2];
        let err =
            ServingCert::from_pem(half, a.key_pem.as_bytes(), "half.crt", "a.key", &provider())
                .unwrap_err();
        assert!(err.to_string().starts_with("half.crt: "), "{err}");
        let err = ServingCert::from_pem(
            a.cert_pem.as_bytes(),
            b"",
            "a.crt",
            "empty.key",
            &provider(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("empty.key: "), "{err}");
    }
}
