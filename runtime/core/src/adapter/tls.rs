//! TLS for adapters whose client speaks it through rustls: the PEM files a connection trusts
//! and presents, set in code or read from the environment, loaded with errors that name the
//! file, and turned into a rustls client configuration over the `ring` provider.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The PEM files of a TLS connection: the root certificates that sign the server's
/// certificate (the system's when none is given), and a client certificate with its key for a
/// server that asks for one (mutual TLS). The files are read when a connection is made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// The contents of [`TlsFiles`], checked to hold what they should, as PEM text: for clients
/// that read PEM themselves.
#[derive(Clone, Default)]
pub struct TlsPem {
    /// The root certificates to trust; `None`: the system's.
    pub ca: Option<Vec<u8>>,
    /// The client certificate chain and its private key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret; the rest is not worth printing.
        f.debug_struct("TlsPem")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<pem>"))
            .finish()
    }
}

/// Why the files of [`TlsFiles`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read the TLS {what} file {path}: {source}; check the path and its permissions")]
    Read {
        /// Which file: `CA`, `client certificate` or `client key`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A certificate file holds no certificate, or one that does not parse.
    #[error(
        "the TLS {what} file {path} holds no usable certificate ({reason}); give a PEM file \
         with `-----BEGIN CERTIFICATE-----` blocks"
    )]
    Certificate {
        /// Which file: `CA` or `client certificate`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The client key file holds no private key, or one that does not parse.
    #[error(
        "the TLS client key file {path} holds no usable private key ({reason}); give a PEM \
         file with a PKCS#8, PKCS#1 or SEC1 key"
    )]
    Key {
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A client certificate was given without its key, or a key without its certificate.
    #[error(
        "a TLS client certificate needs its key and a key its certificate: give both files \
         (client certificate: {cert:?}, key: {key:?})"
    )]
    HalfIdentity {
        /// The certificate file, if given.
        cert: Option<PathBuf>,
        /// The key file, if given.
        key: Option<PathBuf>,
    },
    /// No root certificate could be had from the system, and no CA file was given.
    #[error(
        "no trusted root certificates: the system's could not be loaded ({reason}); give a CA \
         file"
    )]
    NoSystemRoots {
        /// What went wrong loading them.
        reason: String,
    },
    /// rustls refused the certificates or key (a key that does not match its certificate, a
    /// key type it does not support...).
    #[error("the TLS settings are refused: {reason}")]
    Refused {
        /// What rustls said.
        reason: String,
    },
}

/// Writes the TLS settings of an adapter's configuration: `tls_from_env`, `ca_file` and
/// `client_cert`, on a struct with a `tls: TlsFiles` field, in a module where `CA_FILE_ENV`,
/// `CLIENT_CERT_ENV` and `CLIENT_KEY_ENV` name the adapter's variables. `$trust` says how a CA
/// file is trusted and what address TLS needs, `$verify` what a server asking for a client
/// certificate is called, both as they appear in the methods' documentation.
#[macro_export]
macro_rules! tls_settings {
    ($config:ty, trust: $trust:literal, verify: $verify:literal) => {
        impl $config {
            /// The TLS files named by [`CA_FILE_ENV`], [`CLIENT_CERT_ENV`] and
            /// [`CLIENT_KEY_ENV`], in place of those set before (a variable unset or empty names
            /// none).
            pub fn tls_from_env(mut self) -> Self {
                self.tls = $crate::adapter::TlsFiles::from_env(
                    CA_FILE_ENV,
                    CLIENT_CERT_ENV,
                    CLIENT_KEY_ENV,
                );
                self
            }

            #[doc = concat!("Trusts the root certificates of this PEM file for TLS ", $trust, ".")]
            pub fn ca_file(mut self, path: impl Into<::std::path::PathBuf>) -> Self {
                self.tls = self.tls.ca_file(path);
                self
            }

            #[doc = concat!(
                "Presents this certificate chain, with this private key (both PEM files), to ",
                $verify,
                "."
            )]
            pub fn client_cert(
                mut self,
                cert: impl Into<::std::path::PathBuf>,
                key: impl Into<::std::path::PathBuf>,
            ) -> Self {
                self.tls = self.tls.client_cert(cert, key);
                self
            }
        }
    };
}

impl TlsFiles {
    /// The files named by the environment variables `ca_file`, `client_cert` and `client_key`
    /// (for instance `TIDINGS_REDIS_CA_FILE`, `TIDINGS_REDIS_CLIENT_CERT`,
    /// `TIDINGS_REDIS_CLIENT_KEY`); a variable unset or empty gives no file.
    pub fn from_env(ca_file: &str, client_cert: &str, client_key: &str) -> Self {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        TlsFiles {
            ca_file: path(ca_file),
            client_cert: path(client_cert),
            client_key: path(client_key),
        }
    }

    /// Trusts the root certificates of this PEM file instead of the system's.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this certificate chain, with this private key, to a server that asks for one
    /// (both PEM files).
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Whether no file is set.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    /// Reads the files and checks that they hold certificates and a key.
    pub fn pem(&self) -> Result<TlsPem, TlsError> {
        let ca = match &self.ca_file {
            Some(path) => Some(certificate_file(path, "CA")?.0),
            None => None,
        };
        let client = match self.identity_files()? {
            Some((cert, key)) => Some((
                certificate_file(cert, "client certificate")?.0,
                key_file(key)?.0,
            )),
            None => None,
        };
        Ok(TlsPem { ca, client })
    }

    /// A rustls client configuration over the `ring` provider: it trusts the CA file's
    /// certificates (or the system's without one) and presents the client certificate if
    /// one is set.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let roots = match &self.ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificate_file(path, "CA")?.1 {
                    roots.add(certificate).map_err(|e| TlsError::Certificate {
                        what: "CA",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
                roots
            }
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_root_certificates(roots);
        match self.identity_files()? {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    certificate_file(cert, "client certificate")?.1,
                    key_file(key)?.1,
                )
                .map_err(refused),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// The client certificate and key files, when both are set.
    fn identity_files(&self) -> Result<Option<(&PathBuf, &PathBuf)>, TlsError> {
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (cert, key) => Err(TlsError::HalfIdentity {
                cert: cert.clone(),
                key: key.clone(),
            }),
        }
    }
}

/// Makes sure rustls has a process-wide crypto provider, installing `ring`'s when there is
/// none: for clients that build their rustls configuration from that default (the `redis`
/// crate), which would otherwise panic in a program whose dependencies enable more than one
/// provider.
pub fn ensure_tls_provider() {
    if CryptoProvider::get_default().is_none()
        && rustls::crypto::ring::default_provider()
            .install_default()
            .is_err()
    {
        // Another thread installed one meanwhile: a provider is in place, which is all that
        // was needed.
        tracing::debug!("a rustls crypto provider was installed meanwhile; using it");
    }
}

/// A PEM file of certificates: its text, and the certificates it holds (at least one).
fn certificate_file(
    path: &Path,
    what: &'static str,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), TlsError> {
    let pem = read(path, what)?;
    let invalid = |reason: String| TlsError::Certificate {
        what,
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("no certificate found".to_owned()));
    }
    Ok((pem, certificates))
}

/// A PEM file of a private key: its text, and the key.
fn key_file(path: &Path) -> Result<(Vec<u8>, PrivateKeyDer<'static>), TlsError> {
    let pem = read(path, "client key")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((pem, key))
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The system's root certificates. Some unreadable ones among many are reported and skipped;
/// none at all is an error.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_, unparsable) = roots.add_parsable_certificates(loaded.certs);
    let problems: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    if roots.is_empty() {
        let reason = if problems.is_empty() {
            "the system store is empty".to_owned()
        } else {
            problems.join("; ")
        };
        return Err(TlsError::NoSystemRoots { reason });
    }
    if unparsable > 0 || !problems.is_empty() {
        tracing::warn!(
            skipped = unparsable,
            errors = %problems.join("; "),
            "some system root certificates could not be loaded; trusting the others",
        );
    }
    Ok(roots)
}

fn refused(e: rustls::Error) -> TlsError {
    TlsError::Refused {
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("writing a test file");
        path
    }

    #[test]
    fn no_files_means_nothing_to_read() {
        let files = TlsFiles::default();
        assert!(files.is_empty());
        let pem = files.pem().expect("nothing to read");
        assert!(pem.ca.is_none() && pem.client.is_none());
    }

    #[test]
    fn a_missing_file_is_named_with_what_it_was_for() {
        let e = TlsFiles::default()
            .ca_file("/nonexistent/ca.pem")
            .pem()
            .unwrap_err();
        assert!(matches!(e, TlsError::Read { what: "CA", .. }), "{e:?}");
        let shown = e.to_string();
        assert!(shown.contains("/nonexistent/ca.pem"), "{shown}");
        assert!(shown.contains("TLS CA file"), "{shown}");
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = written(dir.path(), "ca.pem", "not a certificate\n");
        let e = TlsFiles::default().ca_file(&path).pem().unwrap_err();
        assert!(
            matches!(e, TlsError::Certificate { what: "CA", .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
        let e = TlsFiles::default()
            .ca_file(&path)
            .client_config()
            .unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e:?}");
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        // A certificate block whose content is not checked until it is used.
        let cert = written(
            dir.path(),
            "client.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let key = written(dir.path(), "client.key", "no key here\n");
        let e = TlsFiles::default()
            .client_cert(&cert, &key)
            .pem()
            .unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e:?}");
        assert!(e.to_string().contains("client.key"), "{e}");
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let files = TlsFiles {
            client_cert: Some("client.pem".into()),
            ..TlsFiles::default()
        };
        let e = files.pem().unwrap_err();
        assert!(matches!(e, TlsError::HalfIdentity { .. }), "{e:?}");
        assert!(e.to_string().contains("needs its key"), "{e}");
    }
}
