//! Certificates made for one test: a certificate authority of its own, and the server and client
//! certificates it signs, written as PEM files in a temporary folder that goes with it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A certificate authority and the folder its files are written to.
pub struct Authority {
    name: String,
    issuer: Issuer<'static, KeyPair>,
    ca_file: PathBuf,
    dir: TempDir,
}

impl Authority {
    /// A new authority named `name`; its certificate is written to `ca.pem`.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tidings-pki-")
            .tempdir()
            .expect("a temporary folder for the certificates");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a key for the authority");
        let cert = params
            .self_signed(&key)
            .expect("the authority's certificate");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("writing ca.pem");
        Authority {
            name: name.to_owned(),
            issuer: Issuer::new(params, key),
            ca_file,
            dir,
        }
    }

    /// The authority's certificate, to trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A server certificate for `127.0.0.1` and `localhost`, written to `server.pem` and
    /// `server.key`.
    pub fn server(&self) -> Identity {
        self.sign(
            "server",
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate, written to `client.pem` and `client.key`.
    pub fn client(&self) -> Identity {
        self.sign("client", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn sign(&self, role: &str, names: Vec<String>, usage: ExtendedKeyUsagePurpose) -> Identity {
        let mut params = CertificateParams::new(names).expect("valid subject names");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} {role}", self.name));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a certificate signed by the authority");
        let identity = Identity {
            cert: self.dir.path().join(format!("{role}.pem")),
            key: self.dir.path().join(format!("{role}.key")),
        };
        std::fs::write(&identity.cert, cert.pem()).expect("writing the certificate");
        std::fs::write(&identity.key, key.serialize_pem()).expect("writing the key");
        identity
    }
}
