//! TLS for client listeners whose security protocol is SSL: this node's key and certificate
//! chain (Kafka's `ssl.keystore.*` in its PEM forms), the CAs whose client certificates are
//! accepted (`ssl.truststore.*`), and `ssl.client.auth`, on rustls. Each setting may be given
//! per listener as `listener.name.<name>.ssl.*`.
//!
//! The files are re-read when they change, checked at most once a second as connections
//! arrive: a new certificate serves the next handshake, without a restart. A change that does
//! not load (a half-written file) keeps the previous certificate and is logged.

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_rustls::TlsAcceptor;

/// The largest keystore or truststore file read; real ones are a few KiB.
const MAX_PEM_FILE: u64 = 1 << 20;
/// How often the files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// One setting's value and the name it was given under (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

impl Setting {
    fn is_set(&self) -> bool {
        !self.value.trim().is_empty()
    }
}

/// A listener's TLS settings, as `Config::tls_settings` resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listener: String,
    pub keystore_type: Setting,
    pub keystore_location: Setting,
    pub keystore_certificate_chain: Setting,
    pub keystore_key: Setting,
    pub key_password: Setting,
    pub truststore_type: Setting,
    pub truststore_location: Setting,
    pub truststore_certificates: Setting,
    pub client_auth: Setting,
}

/// Why a listener's TLS settings do not make a server configuration.
#[derive(Debug, thiserror::Error)]
#[error("listener {listener}: {name}: {reason}")]
pub struct TlsError {
    pub listener: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A listener's TLS acceptor, rebuilt when its files change.
pub struct Tls {
    settings: TlsSettings,
    state: Mutex<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// A file the configuration was built from, as it was then: modification time and length.
type Stamp = (PathBuf, Option<(SystemTime, u64)>);

fn stamp(path: &Path) -> Stamp {
    let seen = std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())));
    (path.to_path_buf(), seen)
}

impl Tls {
    /// Loads the settings; an error here stops start-up with the setting it names.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let (config, files) = build(&settings)?;
        Ok(Self {
            state: Mutex::new(Loaded {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                stamps: files.iter().map(|f| stamp(f)).collect(),
                checked: Instant::now(),
            }),
            settings,
        })
    }

    /// The acceptor for the next handshake, with the files re-read first when they changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut st = self.state.lock().expect("tls state lock poisoned");
        if st.checked.elapsed() >= RELOAD_CHECK {
            st.checked = Instant::now();
            let changed = st.stamps.iter().any(|(path, seen)| stamp(path).1 != *seen);
            if changed {
                match build(&self.settings) {
                    Ok((config, files)) => {
                        st.acceptor = TlsAcceptor::from(Arc::new(config));
                        st.stamps = files.iter().map(|f| stamp(f)).collect();
                        tracing::info!(listener = %self.settings.listener, "TLS keystore or truststore reloaded");
                    }
                    Err(e) => {
                        // Retried at the next change; until then the previous files serve.
                        st.stamps = st.stamps.iter().map(|(p, _)| stamp(p)).collect();
                        crate::warn_limited!(error = %e, "TLS files changed but do not load; keeping the previous ones");
                    }
                }
            }
        }
        st.acceptor.clone()
    }
}

fn bad(s: &TlsSettings, setting: &Setting, reason: impl Into<String>) -> TlsError {
    TlsError {
        listener: s.listener.clone(),
        name: setting.name.clone(),
        reason: reason.into(),
    }
}

/// A PEM file's bytes, bounded in size.
fn read_pem(s: &TlsSettings, setting: &Setting) -> Result<Vec<u8>, TlsError> {
    let path = Path::new(setting.value.trim());
    let len = std::fs::metadata(path)
        .map_err(|e| bad(s, setting, format!("cannot read {}: {e}", path.display())))?
        .len();
    if len > MAX_PEM_FILE {
        return Err(bad(
            s,
            setting,
            format!(
                "{} is {len} bytes, more than a PEM file holds",
                path.display()
            ),
        ));
    }
    std::fs::read(path).map_err(|e| bad(s, setting, format!("cannot read {}: {e}", path.display())))
}

fn check_pem_type(s: &TlsSettings, setting: &Setting) -> Result<(), TlsError> {
    if setting.value.trim().eq_ignore_ascii_case("PEM") {
        Ok(())
    } else {
        Err(bad(
            s,
            setting,
            format!(
                "`{}`: spool reads PEM stores only (set it to PEM and give PEM files)",
                setting.value
            ),
        ))
    }
}

fn certificates(
    s: &TlsSettings,
    setting: &Setting,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(s, setting, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(s, setting, "holds no certificate"));
    }
    Ok(certs)
}

fn private_key(
    s: &TlsSettings,
    setting: &Setting,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    if s.key_password.is_set() || pem.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY") {
        return Err(bad(
            s,
            setting,
            "the private key is encrypted (ssl.key.password); spool reads unencrypted PKCS#8, \
             PKCS#1 or SEC1 keys",
        ));
    }
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| bad(s, setting, format!("holds no usable private key: {e}")))
}

/// Builds the server configuration, and says which files it was read from.
fn build(s: &TlsSettings) -> Result<(ServerConfig, Vec<PathBuf>), TlsError> {
    let mut files = Vec::new();
    check_pem_type(s, &s.keystore_type)?;
    let (certs, key) = if s.keystore_location.is_set() {
        let pem = read_pem(s, &s.keystore_location)?;
        files.push(PathBuf::from(s.keystore_location.value.trim()));
        (
            certificates(s, &s.keystore_location, &pem)?,
            private_key(s, &s.keystore_location, &pem)?,
        )
    } else if s.keystore_certificate_chain.is_set() && s.keystore_key.is_set() {
        (
            certificates(
                s,
                &s.keystore_certificate_chain,
                s.keystore_certificate_chain.value.as_bytes(),
            )?,
            private_key(s, &s.keystore_key, s.keystore_key.value.as_bytes())?,
        )
    } else {
        return Err(bad(
            s,
            &s.keystore_location,
            "an SSL listener needs this node's key and certificate chain: a PEM file here, or \
             ssl.keystore.certificate.chain and ssl.keystore.key",
        ));
    };
    let client_auth = match s.client_auth.value.trim().to_ascii_lowercase().as_str() {
        "" | "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        other => {
            return Err(bad(
                s,
                &s.client_auth,
                format!("`{other}` is not none, requested or required"),
            ))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(s, &s.keystore_type, e.to_string()))?;
    let builder = if client_auth == ClientAuth::None {
        builder.with_no_client_auth()
    } else {
        check_pem_type(s, &s.truststore_type)?;
        let (setting, pem) = if s.truststore_location.is_set() {
            files.push(PathBuf::from(s.truststore_location.value.trim()));
            (&s.truststore_location, read_pem(s, &s.truststore_location)?)
        } else if s.truststore_certificates.is_set() {
            (
                &s.truststore_certificates,
                s.truststore_certificates.value.as_bytes().to_vec(),
            )
        } else {
            return Err(bad(
                s,
                &s.truststore_location,
                format!(
                    "{} is {}: the CAs that sign client certificates are needed, as a PEM file \
                     here or in ssl.truststore.certificates",
                    s.client_auth.name, s.client_auth.value
                ),
            ));
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(s, setting, &pem)? {
            roots
                .add(cert)
                .map_err(|e| bad(s, setting, format!("not a CA certificate: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = match client_auth {
            ClientAuth::Requested => verifier.allow_unauthenticated(),
            _ => verifier,
        }
        .build()
        .map_err(|e| bad(s, setting, e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        bad(
            s,
            &s.keystore_location,
            format!("the key does not go with the certificate: {e}"),
        )
    })?;
    Ok((config, files))
}
