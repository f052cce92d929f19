//! `pocketlog serve --https`: HTTPS with a certificate from PEM files (a CA made here with
//! rcgen) and with automatic certificates from a real ACME server (Debian's `pebble`, run on
//! loopback by the test, validating our TLS-ALPN-01 answer on the HTTPS port), the plain HTTP
//! listener's redirect (PocketBase's `302 Found` to `https://host:port/path`, `400 Use HTTPS`
//! for other methods), the certificate cache in `pb_data/.autocert_cache` reused at restart,
//! and clear errors for unusable certificate files.
//!
//! The HTTPS client is tokio-rustls with only the test's roots trusted, so a passing request
//! proves the served chain verifies for the name asked.

#![allow(clippy::unwrap_used)]

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a leaf certificate for `localhost` and 127.0.0.1 signed by it, as PEM files in
/// `dir`: (ca.pem, cert.pem, key.pem).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pocketlog test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

/// A TLS client trusting only the certificates of `ca_pem` (PEM text).
fn client(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The answer to one HTTP/1.1 request: status, head, body, and the peer's leaf certificate
/// (TLS only).
struct Answer {
    status: u16,
    head: String,
    body: String,
    leaf: Option<Vec<u8>>,
}

/// One request over TLS (`tls` given: verified for `name`) or plain TCP.
async fn request(
    port: u16,
    tls: Option<(&tokio_rustls::TlsConnector, &str)>,
    method: &str,
    path: &str,
) -> std::io::Result<Answer> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    let mut leaf = None;
    match tls {
        Some((connector, name)) => {
            let name = ServerName::try_from(name.to_string()).unwrap();
            let mut stream = connector.connect(name, tcp).await?;
            leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.to_vec());
            stream.write_all(text.as_bytes()).await?;
            let _ = stream.read_to_end(&mut raw).await;
        }
        None => {
            let mut stream = tcp;
            stream.write_all(text.as_bytes()).await?;
            stream.read_to_end(&mut raw).await?;
        }
    }
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
        leaf,
    })
}

/// A running `pocketlog serve` (killed on drop), stderr in a file.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> Serve {
        let log = dir.with_extension(format!("{}.log", free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
            .arg("serve")
            .arg("--dir")
            .arg(dir)
            .args(["--sync", "none"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Serve { child, log }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a signal to our own child, not reaped yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}", self.stderr());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /api/health` over TLS until it answers 200 (or the deadline passes).
async fn wait_https(
    serve: &Serve,
    port: u16,
    connector: &tokio_rustls::TlsConnector,
    within: Duration,
) -> Answer {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(answer) =
            request(port, Some((connector, "localhost")), "GET", "/api/health").await
        {
            if answer.status == 200 {
                return answer;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no HTTPS answer on :{port}:\n{}",
            serve.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn https_with_certificate_files_and_the_http_redirect() {
    let root = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(root.path());
    let dir = root.path().join("pb_data");
    let (http, https) = (free_port(), free_port());
    let serve = Serve::start(
        &dir,
        &[
            "--http",
            &format!("127.0.0.1:{http}"),
            "--https",
            &format!("127.0.0.1:{https}"),
            "--tlsCert",
            cert.to_str().unwrap(),
            "--tlsKey",
            key.to_str().unwrap(),
        ],
    );
    runtime().block_on(async {
        let connector = client(&std::fs::read(&ca).unwrap());
        let health = wait_https(&serve, https, &connector, Duration::from_secs(30)).await;
        assert!(health.body.contains("API is healthy"), "{}", health.body);
        // The name in the certificate is checked: an unrelated name fails the handshake.
        assert!(request(
            https,
            Some((&connector, "example.org")),
            "GET",
            "/api/health"
        )
        .await
        .is_err());
        // Plain HTTP on the HTTPS port is no API access.
        let plain = request(https, None, "GET", "/api/health").await;
        assert!(plain.map_or(true, |answer| answer.status != 200));
        // The plain listener redirects GET/HEAD like PocketBase (the port of --https kept).
        let redirect = request(http, None, "GET", "/api/health?x=1").await.unwrap();
        assert_eq!(redirect.status, 302, "{}", redirect.head);
        let location = format!("https://localhost:{https}/api/health?x=1");
        assert!(
            redirect
                .head
                .lines()
                .any(|line| line.eq_ignore_ascii_case(&format!("location: {location}"))),
            "{}",
            redirect.head
        );
        assert_eq!(
            redirect.body,
            format!("<a href=\"{location}\">Found</a>.\n\n")
        );
        let head = request(http, None, "HEAD", "/").await.unwrap();
        assert_eq!(head.status, 302);
        let post = request(http, None, "POST", "/api/health").await.unwrap();
        assert_eq!(post.status, 400);
        assert_eq!(post.body, "Use HTTPS\n");
    });
    assert!(serve
        .stderr()
        .contains(&format!("Server started at https://127.0.0.1:{https}")));
    serve.stop();
}

#[test]
fn unusable_certificate_files_are_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = make_certs(root.path());
    let other = root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, _, other_key) = make_certs(&other);
    let garbage = root.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem").unwrap();
    let dir = root.path().join("pb_data");
    for (cert, key, expected) in [
        (&cert, &other_key, "does not match"),
        (&garbage, &key, "--tlsCert"),
        (&cert, &garbage, "--tlsKey"),
        (&root.path().join("missing.pem"), &key, "--tlsCert"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
            .arg("serve")
            .arg("--dir")
            .arg(&dir)
            .args(["--http", &format!("127.0.0.1:{}", free_port())])
            .args(["--https", &format!("127.0.0.1:{}", free_port())])
            .arg("--tlsCert")
            .arg(cert)
            .arg("--tlsKey")
            .arg(key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr
                .lines()
                .any(|line| line.starts_with("Error:") && line.contains(expected)),
            "{expected}: {stderr}"
        );
    }
    // --tlsCert without --https, and --https with neither a domain nor certificate files.
    for args in [
        vec![
            "--tlsCert",
            cert.to_str().unwrap(),
            "--tlsKey",
            key.to_str().unwrap(),
        ],
        vec!["--https", "127.0.0.1:0"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pocketlog"))
            .arg("serve")
            .arg("--dir")
            .arg(&dir)
            .args(["--http", &format!("127.0.0.1:{}", free_port())])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("Error:") || stderr.contains("\nError:"),
            "{stderr}"
        );
    }
}

/// A running pebble (killed on drop).
struct Pebble {
    child: Child,
    directory: String,
    management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts pebble on loopback with its HTTPS certificate from our CA, validating TLS-ALPN-01
/// on `tls_port`, resolving names with the DNS server on `dns` (default: the system's).
fn start_pebble(dir: &Path, cert: &Path, key: &Path, tls_port: u16, dns: Option<u16>) -> Pebble {
    let binary = ["/usr/bin/pebble", "/usr/local/bin/pebble"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("pebble is not installed (`apt-get install pebble`, done by .ci/run)");
    let (listen, management) = (free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{listen}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": cert,
        "privateKey": key,
        "httpPort": free_port(),
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let mut command = Command::new(binary);
    if let Some(port) = dns {
        command.arg("-dnsserver").arg(format!("127.0.0.1:{port}"));
    }
    let child = command
        .arg("-config")
        .arg(&config_path)
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(std::fs::File::create(dir.join("pebble.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Pebble {
        child,
        directory: format!("https://localhost:{listen}/dir"),
        management,
    }
}

#[test]
fn automatic_tls_from_an_acme_server_is_cached_and_reused_at_restart() {
    let root = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(root.path());
    let dir = root.path().join("pb_data");
    let (http, https) = (free_port(), free_port());
    let pebble = start_pebble(root.path(), &cert, &key, https, None);
    let args = [
        "--http".to_string(),
        format!("127.0.0.1:{http}"),
        "--https".to_string(),
        format!("127.0.0.1:{https}"),
        "--acmeDirectory".to_string(),
        pebble.directory.clone(),
        "--acmeCA".to_string(),
        ca.to_str().unwrap().to_string(),
        "localhost".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rt = runtime();
    let our_ca = client(&std::fs::read(&ca).unwrap());
    // Pebble's issuing root, from its management interface (served with our CA's cert).
    let pebble_root = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match request(
                pebble.management,
                Some((&our_ca, "localhost")),
                "GET",
                "/roots/0",
            )
            .await
            {
                Ok(answer) if answer.status == 200 => break answer.body,
                _ => {
                    assert!(Instant::now() < deadline, "pebble did not start");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let connector = client(pebble_root.as_bytes());
    let serve = Serve::start(&dir, &args);
    let first = rt.block_on(async {
        let answer = wait_https(&serve, https, &connector, Duration::from_secs(90)).await;
        assert!(answer.body.contains("API is healthy"), "{}", answer.body);
        let redirect = request(http, None, "GET", "/_/").await.unwrap();
        assert_eq!(redirect.status, 302, "{}", redirect.head);
        answer.leaf.unwrap()
    });
    let log = serve.stderr();
    serve.stop();
    let cached: Vec<_> = std::fs::read_dir(dir.join(".autocert_cache"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        cached.iter().any(|name| name.starts_with("cached_cert")),
        "{cached:?}\n{log}"
    );
    // Restart with the ACME server gone: the cached certificate is served at once.
    drop(pebble);
    let serve = Serve::start(&dir, &args);
    rt.block_on(async {
        let answer = wait_https(&serve, https, &connector, Duration::from_secs(30)).await;
        assert_eq!(
            answer.leaf.unwrap(),
            first,
            "a new certificate after restart"
        );
    });
    serve.stop();
}

/// A mock DNS server answering every A query with 127.0.0.1 (`pebble-challtestsrv`, from the
/// same Debian package as pebble), so that pebble validates any host name on loopback.
struct MockDns {
    child: Child,
    port: u16,
}

impl Drop for MockDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mock_dns() -> MockDns {
    let binary = [
        "/usr/bin/pebble-challtestsrv",
        "/usr/local/bin/pebble-challtestsrv",
    ]
    .into_iter()
    .find(|path| Path::new(path).exists())
    .expect("pebble-challtestsrv is not installed (Debian's pebble package, done by .ci/run)");
    let port = free_port();
    let child = Command::new(binary)
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args(["-dns01", &format!("127.0.0.1:{port}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    MockDns { child, port }
}

/// Whether the DER certificate names `host` (a SAN dNSName is the host's ASCII bytes).
fn names(leaf: &[u8], host: &str) -> bool {
    leaf.windows(host.len())
        .any(|window| window == host.as_bytes())
}

#[test]
fn each_host_gets_its_own_certificate() {
    let root = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(root.path());
    let dir = root.path().join("pb_data");
    let (http, https) = (free_port(), free_port());
    let dns = start_mock_dns();
    let pebble = start_pebble(root.path(), &cert, &key, https, Some(dns.port));
    let args = [
        "--http".to_string(),
        format!("127.0.0.1:{http}"),
        "--https".to_string(),
        format!("127.0.0.1:{https}"),
        "--acmeDirectory".to_string(),
        pebble.directory.clone(),
        "--acmeCA".to_string(),
        ca.to_str().unwrap().to_string(),
        "alpha.test".to_string(),
        "beta.test".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rt = runtime();
    let our_ca = client(&std::fs::read(&ca).unwrap());
    let pebble_root = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match request(
                pebble.management,
                Some((&our_ca, "localhost")),
                "GET",
                "/roots/0",
            )
            .await
            {
                Ok(answer) if answer.status == 200 => break answer.body,
                _ => {
                    assert!(Instant::now() < deadline, "pebble did not start");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let connector = client(pebble_root.as_bytes());
    let serve = Serve::start(&dir, &args);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(120);
        for (host, other) in [("alpha.test", "beta.test"), ("beta.test", "alpha.test")] {
            // The client verifies the chain for `host`: a pass means the certificate names it.
            let leaf = loop {
                match request(https, Some((&connector, host)), "GET", "/api/health").await {
                    Ok(answer) if answer.status == 200 => break answer.leaf.unwrap(),
                    _ => {
                        assert!(
                            Instant::now() < deadline,
                            "no certificate for {host}: {}",
                            serve.stderr()
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            assert!(names(&leaf, host), "the certificate of {host} names it");
            assert!(
                !names(&leaf, other),
                "the certificate of {host} names only {host}, not {other}"
            );
        }
    });
    serve.stop();
}
