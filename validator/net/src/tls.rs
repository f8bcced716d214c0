//! TLS for the QUIC transport: TLS 1.3 with the hybrid X25519MLKEM768 key exchange
//! as the *only* group, so there is no classical-only fallback to downgrade to.
//!
//! Why aws-lc-rs (rustls' default provider) rather than a pure-Rust custom group:
//! its X25519MLKEM768 is the IANA codepoint 0x11EC implementation rustls itself
//! ships and tests for interoperability, on AWS-LC's formally verified ML-KEM; a
//! hand-assembled `SupportedKxGroup` over RustCrypto crates would be new,
//! unreviewed code in the most sensitive place of the handshake. The cost is a C
//! build of aws-lc-sys (a C compiler; cmake is used when present).
//!
//! A client that offers only classical groups finds no group in common: rustls
//! aborts the handshake (`NoKxGroupsInCommon`) and [`classify_handshake_error`]
//! turns that into the `classical_only_kx` refusal the transport logs and counts.
//!
//! Certificates are ephemeral and self-signed (rcgen, fresh per endpoint). The
//! client does not check them against any authority: the peer's identity is proven
//! afterwards by its ML-DSA-87 signature over the TLS exporter secret
//! (`identity`). The TLS handshake signature itself *is* verified against the
//! presented certificate's key, so the exporter secret is shared with the holder of
//! that key and no one else.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, SupportedKxGroup, aws_lc_rs};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use thiserror::Error;

/// ALPN protocol id of the dualchain transport.
pub const ALPN: &[u8] = b"dualchain/1";
/// The only key exchange group offered or accepted.
pub static HYBRID_KX_GROUP: &dyn SupportedKxGroup = aws_lc_rs::kx_group::X25519MLKEM768;
/// Server name used by dialers (certificates are not checked against it).
pub const SERVER_NAME: &str = "dualchain-validator";

#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("cannot generate the ephemeral TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("QUIC needs a TLS 1.3 initial cipher suite: {0}")]
    NoInitialCipherSuite(String),
}

/// aws-lc-rs with its key exchange groups restricted to `groups`.
pub fn provider_with_groups(groups: &[&'static dyn SupportedKxGroup]) -> Arc<CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    provider.kx_groups = groups.to_vec();
    Arc::new(provider)
}

/// The hybrid-only provider every dualchain endpoint uses.
pub fn hybrid_provider() -> Arc<CryptoProvider> {
    provider_with_groups(&[HYBRID_KX_GROUP])
}

/// Server side: hybrid-only, TLS 1.3, fresh self-signed certificate, no client certs.
pub fn server_config() -> Result<quinn::crypto::rustls::QuicServerConfig, TlsSetupError> {
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(hybrid_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|e| TlsSetupError::NoInitialCipherSuite(e.to_string()))
}

/// Client side: hybrid-only, TLS 1.3.
pub fn client_config() -> Result<quinn::crypto::rustls::QuicClientConfig, TlsSetupError> {
    client_config_with_groups(&[HYBRID_KX_GROUP])
}

/// A client offering exactly `groups`. Production code uses [`client_config`]; this
/// exists so tests can play a classical-only client and check it is refused.
pub fn client_config_with_groups(
    groups: &[&'static dyn SupportedKxGroup],
) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsSetupError> {
    let provider = provider_with_groups(groups);
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EphemeralCertVerifier { provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    quinn::crypto::rustls::QuicClientConfig::try_from(config)
        .map_err(|e| TlsSetupError::NoInitialCipherSuite(e.to_string()))
}

/// Accepts any (ephemeral) certificate but verifies the handshake signature with it;
/// see the module docs for why this is sound here.
#[derive(Debug)]
struct EphemeralCertVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EphemeralCertVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is enabled; a TLS 1.2 signature is never acceptable.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a QUIC/TLS handshake failed, as a metrics label and a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The peer offered only classical key exchange groups.
    ClassicalOnlyKeyExchange,
    /// Any other TLS failure (bad certificate signature, protocol error…).
    Tls,
    /// The peer went away or the attempt timed out.
    Timeout,
    /// Anything else at the QUIC layer.
    Transport,
}

impl HandshakeFailure {
    pub const fn reason(self) -> &'static str {
        match self {
            HandshakeFailure::ClassicalOnlyKeyExchange => "classical_only_kx",
            HandshakeFailure::Tls => "tls",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Transport => "transport",
        }
    }
}

/// Classifies a failed QUIC connection attempt.
///
/// rustls reports a missing common group as `PeerIncompatible(NoKxGroupsInCommon)`;
/// quinn carries it as the reason text of the TLS alert it closes with (locally as a
/// transport error, at the other end as the peer's close reason), so the text is what
/// identifies it on both sides.
pub fn classify_handshake_error(error: &quinn::ConnectionError) -> HandshakeFailure {
    use quinn::ConnectionError as E;
    if error.to_string().contains("NoKxGroupsInCommon") {
        return HandshakeFailure::ClassicalOnlyKeyExchange;
    }
    match error {
        E::TimedOut => HandshakeFailure::Timeout,
        E::TransportError(_) | E::ConnectionClosed(_) => HandshakeFailure::Tls,
        _ => HandshakeFailure::Transport,
    }
}
