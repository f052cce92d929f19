//! TLS for `pocketlog serve --https` / `serve <domain>…`: automatic certificates over ACME
//! (Let's Encrypt by default, `rustls-acme`, TLS-ALPN-01 challenges answered on the HTTPS
//! port) or a certificate and key given as PEM files (`--tlsCert`/`--tlsKey`), plus the plain
//! HTTP listener's answers when HTTPS is on (PocketBase's redirect).
//!
//! Invariants:
//! - `serve a.com b.com` obtains one certificate per host, each naming only its host (as
//!   PocketBase's autocert); a connection gets the certificate of the host its SNI names.
//!   No `www.` variants are added (a name whose DNS does not point here cannot validate).
//! - ACME certificates and the account key are cached in `<data dir>/.autocert_cache`
//!   ([`AUTOCERT_CACHE_DIR`], PocketBase's directory name) and reused at the next start; the
//!   ACME client renews them in the background (rustls-acme's state stream, polled by one task).
//! - A TLS-ALPN-01 validation connection gets only the challenge certificate and is closed; it
//!   never reaches the API.
//! - The plain HTTP listener of an HTTPS server answers every GET/HEAD with a `302 Found` to
//!   the same path on HTTPS and every other method with `400 Use HTTPS`, as PocketBase's
//!   (autocert's) redirect handler does; it serves nothing of the API.

use anyhow::{Context, Result};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

/// The certificate cache directory inside the data dir (PocketBase's name).
pub const AUTOCERT_CACHE_DIR: &str = ".autocert_cache";

/// Let's Encrypt's production ACME directory (the default, as PocketBase's autocert).
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Where the HTTPS certificate comes from.
pub enum Source {
    /// ACME for these domains.
    Acme {
        domains: Vec<String>,
        /// The ACME directory URL.
        directory: String,
        /// PEM file with extra roots trusted for the ACME directory's HTTPS (a test CA).
        directory_ca: Option<PathBuf>,
        /// `mailto:` contacts for the ACME account (may be empty, as PocketBase's).
        contact: Vec<String>,
    },
    /// A certificate chain and its private key, PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// Accepts TLS connections with the configured certificate source.
#[derive(Clone)]
pub struct Acceptor {
    /// The configuration of ordinary connections (`http/1.1`).
    config: Arc<ServerConfig>,
    /// With ACME: the configuration answering TLS-ALPN-01 validation connections.
    challenge: Option<Arc<ServerConfig>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Acceptor {
    /// Builds the acceptor; with ACME, starts the background task that obtains (or loads
    /// from `<data_dir>/.autocert_cache`) and renews the certificate. Must run inside a
    /// tokio runtime.
    pub fn new(source: Source, data_dir: &Path) -> Result<Self> {
        match source {
            Source::Files { cert, key } => Self::from_files(&cert, &key),
            Source::Acme {
                domains,
                directory,
                directory_ca,
                contact,
            } => Self::acme(domains, directory, directory_ca, contact, data_dir),
        }
    }

    fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("--tlsCert {}: cannot read", cert.display()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .with_context(|| format!("--tlsCert {}: not a PEM certificate", cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "--tlsCert {}: no certificate in the file",
            cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("--tlsKey {}: not a PEM private key", key.display()))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("--tlsCert/--tlsKey: the key does not match the certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            challenge: None,
        })
    }

    fn acme(
        domains: Vec<String>,
        directory: String,
        directory_ca: Option<PathBuf>,
        contact: Vec<String>,
        data_dir: &Path,
    ) -> Result<Self> {
        anyhow::ensure!(
            !domains.is_empty(),
            "automatic TLS needs at least one domain: `serve example.com` (or give \
             --tlsCert and --tlsKey)"
        );
        let cache = data_dir.join(AUTOCERT_CACHE_DIR);
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("cannot create {}", cache.display()))?;
        let client = match directory_ca {
            None => None,
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(&ca)
                    .with_context(|| format!("ACME CA {}: cannot read", ca.display()))?
                {
                    roots
                        .add(cert.context("ACME CA: not a PEM certificate")?)
                        .context("ACME CA: not a usable certificate")?;
                }
                Some(Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider())
                        .with_safe_default_protocol_versions()
                        .context("TLS protocol versions")?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                ))
            }
        };
        // One ACME order (and certificate) per host, each naming only its host, as
        // PocketBase's autocert does: a host whose DNS is not pointed here yet does not keep
        // the others from getting theirs.
        let mut hosts = Vec::with_capacity(domains.len());
        for domain in unique_hosts(&domains) {
            let names = [domain.clone()];
            let config = match &client {
                None => rustls_acme::AcmeConfig::new_with_provider(&names, provider()),
                Some(client) => {
                    rustls_acme::AcmeConfig::new_with_client_config(&names, Arc::clone(client))
                }
            };
            let mut state = config
                .directory(&directory)
                .contact(contact.clone())
                .cache(rustls_acme::caches::DirCache::new(cache.clone()))
                .state();
            hosts.push((domain.clone(), state.resolver()));
            tokio::spawn(async move {
                while let Some(event) = state.next().await {
                    match event {
                        Ok(ok) => tracing::info!(host = %domain, event = ?ok, "ACME"),
                        Err(err) => tracing::warn!(host = %domain, error = %err, "ACME"),
                    }
                }
            });
        }
        tracing::info!(domains = domains.join(","), %directory, "automatic TLS (ACME), one certificate per host");
        let resolver = Arc::new(PerHost { hosts });
        let build = |alpn: &[u8]| -> Result<Arc<ServerConfig>> {
            let mut config = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(Self {
            config: build(b"http/1.1")?,
            challenge: Some(build(b"acme-tls/1")?),
        })
    }

    /// The TLS handshake of one accepted connection. `None` when the handshake failed or the
    /// connection was an ACME validation (answered and closed here).
    pub async fn accept(&self, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
            .await
            .ok()?;
        if let Some(challenge) = &self.challenge {
            if rustls_acme::is_tls_alpn_challenge(&start.client_hello()) {
                tracing::info!("answering a TLS-ALPN-01 validation");
                let mut tls = start.into_stream(Arc::clone(challenge)).await.ok()?;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                return None;
            }
        }
        start.into_stream(Arc::clone(&self.config)).await.ok()
    }
}

/// The hosts of `serve <domain>…`, lower-cased, each once, in the order given. No `www.`
/// variant is added: an ACME order for a name whose DNS does not point here fails, so only
/// the names given get certificates (give `example.com www.example.com` for both).
fn unique_hosts(domains: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let host = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if !host.is_empty() && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// Picks the certificate of the host a client names (SNI); ACME validation connections are
/// answered by that host's resolver too. A client without SNI, or naming another host, gets
/// the first host's certificate.
#[derive(Debug)]
struct PerHost {
    hosts: Vec<(String, Arc<rustls_acme::ResolvesServerCertAcme>)>,
}

impl rustls::server::ResolvesServerCert for PerHost {
    fn resolve(
        &self,
        client_hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let wanted = client_hello
            .server_name()
            .map(|name| name.trim_end_matches('.').to_ascii_lowercase());
        let resolver = wanted
            .and_then(|name| {
                self.hosts
                    .iter()
                    .find(|(host, _)| *host == name)
                    .map(|(_, resolver)| resolver)
            })
            .or_else(|| self.hosts.first().map(|(_, resolver)| resolver))?;
        resolver.resolve(client_hello)
    }
}

/// The plain-HTTP side of an HTTPS server: PocketBase's redirect (see the module doc).
/// `https_port` is the port of the HTTPS listener (PocketBase always writes it, `:443`).
pub fn redirect_router(https_port: u16) -> axum::Router {
    axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap| async move {
            redirect(&method, &uri, &headers, https_port)
        },
    )
}

fn redirect(method: &Method, uri: &Uri, headers: &HeaderMap, https_port: u16) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Use HTTPS\n",
        )
            .into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| uri.host())
        .unwrap_or("localhost");
    let target = format!(
        "https://{}:{https_port}{}",
        strip_port(host),
        uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let Ok(location) = header::HeaderValue::from_str(&target) else {
        return (StatusCode::BAD_REQUEST, "Use HTTPS\n").into_response();
    };
    let body = format!("<a href=\"{}\">Found</a>.\n\n", html_escape(&target));
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `host[:port]` or `[v6][:port]` without the port.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().map_or(host, |inner| {
            &host[..inner.len() + 2] // keep the brackets
        });
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_keeps_names_and_v6_brackets() {
        assert_eq!(strip_port("example.com:80"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn hosts_are_lower_cased_once_each_without_www_variants() {
        let given = ["A.com", "b.com.", "a.com", " www.a.com "].map(str::to_string);
        assert_eq!(unique_hosts(&given), ["a.com", "b.com", "www.a.com"]);
    }
}
