//! Client TLS for the Cassandra session: the CA that signed the nodes, an optional client
//! certificate, and (when asked) a verifier that checks the chain but not the name.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::CassandraArgs;

impl CassandraArgs {
    pub(super) fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>> {
        let Some(ca) = &self.ssl_ca_location else {
            return Ok(None);
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| anyhow!("CASSANDRA_SSL_CA_LOCATION {}: {e}", ca.display()))?
        {
            roots
                .add(cert.map_err(|e| anyhow!("CASSANDRA_SSL_CA_LOCATION {}: {e}", ca.display()))?)
                .context("CASSANDRA_SSL_CA_LOCATION holds a certificate that is not a CA")?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = if self.ssl_verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("building the certificate verifier")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        };
        let config = match (&self.ssl_cert_location, &self.ssl_key_location) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| anyhow!("CASSANDRA_SSL_CERT_LOCATION {}: {e}", cert.display()))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| anyhow!("CASSANDRA_SSL_KEY_LOCATION {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .context("the client certificate does not match its key")?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => bail!("set both CASSANDRA_SSL_CERT_LOCATION and CASSANDRA_SSL_KEY_LOCATION"),
        };
        Ok(Some(Arc::new(config)))
    }
}

/// Checks a node's certificate chain against the CA, but accepts any name on
/// it (`--cassandra-ssl-verify-hostname false`).
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
