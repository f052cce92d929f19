//! Outgoing e-mail: SMTP delivery with `lettre` per `settings.smtp`, sender from
//! `settings.meta`, through a bounded queue drained by [`MAIL_WORKERS`] background threads
//! (no ordering between mails is promised).
//!
//! Invariants:
//! 1. Sending never blocks a request or the writer: [`Mailer::enqueue`] is a `try_send` on a
//!    bounded channel ([`MAIL_QUEUE_CAPACITY`]); a full queue drops the mail with a `warn` log
//!    line (the request that triggered it has already been answered the same either way, so
//!    no answer reveals anything about delivery).
//! 2. The worker retries a failed delivery [`MAIL_ATTEMPTS`] times with a growing pause, then
//!    logs an `error` line naming the recipient's collection/kind and the SMTP error; it never
//!    panics and never touches the log or `data.db`.
//! 3. The SMTP configuration is a snapshot taken when the mail is queued, so a settings change
//!    applies to mails queued after it.
//! 4. With `smtp.enabled` false nothing is sent: the mail's subject and links are written to
//!    the server log instead (the behaviour before mail existed).
//! 5. The superuser's test e-mail ([`send_now`]) is sent synchronously (off the async runtime)
//!    so its answer can report the SMTP error, bounded by [`SMTP_TIMEOUT`].

pub mod auth;
pub mod template;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Mails waiting for the worker at most; more are dropped with a log line.
pub const MAIL_QUEUE_CAPACITY: usize = 1024;
/// Delivery attempts per mail before giving up.
pub const MAIL_ATTEMPTS: u32 = 3;
/// Pause before the second attempt (doubled for each further one).
pub const MAIL_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Delivery threads draining the queue (each keeps its own pooled SMTP connection; several
/// hide the per-mail round trips of one SMTP session).
pub const MAIL_WORKERS: usize = 4;
/// A record gets one verification / password-reset mail per window (as the reference: repeated
/// requests within it answer the same 204 and send nothing).
pub const RESEND_WINDOW: Duration = Duration::from_secs(120);
/// Keys tracked by the resend guard at most (expired ones are pruned first; when still full,
/// the mail is sent: the guard limits spam, it must not block mail).
pub const RESEND_KEYS_MAX: usize = 100_000;
/// Connect/command timeout of an SMTP session.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// `settings.smtp` and the sender of `settings.meta`, as a mail is queued.
#[derive(Clone, Debug, PartialEq)]
pub struct SmtpConfig {
    /// `smtp.enabled`.
    pub enabled: bool,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Login (empty: no authentication).
    pub username: String,
    /// Password.
    pub password: String,
    /// `PLAIN` (default) or `LOGIN`.
    pub auth_method: String,
    /// Implicit TLS (`true`) or opportunistic STARTTLS (`false`), as PocketBase.
    pub tls: bool,
    /// EHLO name (empty: the machine's host name).
    pub local_name: String,
    /// `meta.senderName`.
    pub sender_name: String,
    /// `meta.senderAddress`.
    pub sender_address: String,
}

impl SmtpConfig {
    /// Reads the configuration from the full (unredacted) settings.
    pub fn from_settings(settings: &Value) -> SmtpConfig {
        let text = |pointer: &str| {
            settings
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        SmtpConfig {
            enabled: settings
                .pointer("/smtp/enabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            host: text("/smtp/host"),
            port: settings
                .pointer("/smtp/port")
                .and_then(Value::as_u64)
                .and_then(|port| u16::try_from(port).ok())
                .unwrap_or(25),
            username: text("/smtp/username"),
            password: text("/smtp/password"),
            auth_method: text("/smtp/authMethod"),
            tls: settings
                .pointer("/smtp/tls")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            local_name: text("/smtp/localName"),
            sender_name: text("/meta/senderName"),
            sender_address: text("/meta/senderAddress"),
        }
    }

    fn transport(&self) -> Result<SmtpTransport, String> {
        let parameters = TlsParameters::new(self.host.clone()).map_err(|e| e.to_string())?;
        let tls = if self.tls {
            Tls::Wrapper(parameters)
        } else {
            Tls::Opportunistic(parameters)
        };
        let mut builder = SmtpTransport::builder_dangerous(self.host.as_str())
            .port(self.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if !self.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                self.username.clone(),
                self.password.clone(),
            ));
            let mechanism = if self.auth_method.eq_ignore_ascii_case("LOGIN") {
                Mechanism::Login
            } else {
                Mechanism::Plain
            };
            builder = builder.authentication(vec![mechanism]);
        }
        if !self.local_name.is_empty() {
            builder = builder.hello_name(ClientId::Domain(self.local_name.clone()));
        }
        Ok(builder.build())
    }
}

/// One rendered mail.
#[derive(Clone, Debug)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject (placeholders already resolved).
    pub subject: String,
    /// Full HTML document.
    pub html: String,
    /// Plain-text alternative.
    pub text: String,
    /// What it is, for log lines (`verification`, `password-reset`, ...).
    pub kind: &'static str,
}

impl Mail {
    fn message(&self, config: &SmtpConfig) -> Result<Message, String> {
        let from_address = config
            .sender_address
            .parse()
            .map_err(|e| format!("invalid sender address: {e}"))?;
        let sender_name = Some(config.sender_name.clone()).filter(|name| !name.is_empty());
        let to = self
            .to
            .parse::<Mailbox>()
            .map_err(|e| format!("invalid recipient address: {e}"))?;
        Message::builder()
            .from(Mailbox::new(sender_name, from_address))
            .to(to)
            .subject(self.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| e.to_string())
    }
}

/// Sends one mail now (blocking): one attempt, the error as text.
pub fn deliver(config: &SmtpConfig, mail: &Mail) -> Result<(), String> {
    let message = mail.message(config)?;
    let transport = config.transport()?;
    transport
        .send(&message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sends one mail from async code without blocking the runtime (the test e-mail).
pub async fn send_now(config: SmtpConfig, mail: Mail) -> Result<(), String> {
    tokio::task::spawn_blocking(move || deliver(&config, &mail))
        .await
        .map_err(|e| e.to_string())?
}

/// Called by the delivery thread once its mail was delivered (or logged, with SMTP off);
/// dropped unused when delivery fails.
pub type OnSent = Box<dyn FnOnce() + Send>;

struct Job {
    config: SmtpConfig,
    mail: Mail,
    on_sent: Option<OnSent>,
}

/// The queue's sending side (held by the app state).
pub struct Mailer {
    queue: SyncSender<Job>,
    /// When each de-duplicated mail (`kind/collection/record`) was last queued.
    recent: Mutex<HashMap<String, Instant>>,
}

impl Default for Mailer {
    fn default() -> Self {
        Mailer::new()
    }
}

impl Mailer {
    /// Starts the delivery threads. They end when the mailer is dropped and the queue is
    /// drained.
    pub fn new() -> Mailer {
        let (queue, jobs) = sync_channel(MAIL_QUEUE_CAPACITY);
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..MAIL_WORKERS {
            let jobs = Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("mailer-{index}"))
                .spawn(move || worker(&jobs));
            if let Err(error) = spawned {
                tracing::error!(%error, "mailer: cannot start a delivery thread");
            }
        }
        Mailer {
            queue,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a de-duplicated mail for `key` may go out now (none in the last
    /// [`RESEND_WINDOW`]); records the send when it may.
    pub fn first_in_window(&self, key: &str) -> bool {
        let Ok(mut recent) = self.recent.lock() else {
            return true;
        };
        if recent
            .get(key)
            .is_some_and(|at| at.elapsed() < RESEND_WINDOW)
        {
            return false;
        }
        if recent.len() >= RESEND_KEYS_MAX {
            recent.retain(|_, at| at.elapsed() < RESEND_WINDOW);
        }
        if recent.len() < RESEND_KEYS_MAX {
            recent.insert(key.to_string(), Instant::now());
        }
        true
    }

    /// Queues `mail` for delivery with `config` (never blocks). With SMTP disabled the mail is
    /// logged instead.
    pub fn enqueue(&self, config: SmtpConfig, mail: Mail) {
        self.enqueue_then(config, mail, None);
    }

    /// [`Mailer::enqueue`], then `on_sent` once the mail went out (never when it fails, is
    /// dropped, or the retries give up).
    pub fn enqueue_then(&self, config: SmtpConfig, mail: Mail, on_sent: Option<OnSent>) {
        if !config.enabled {
            tracing::info!(
                kind = mail.kind,
                to = %mail.to,
                subject = %mail.subject,
                body = %mail.text,
                "mail not sent (smtp disabled in settings); logged instead"
            );
            if let Some(on_sent) = on_sent {
                on_sent();
            }
            return;
        }
        match self.queue.try_send(Job {
            config,
            mail,
            on_sent,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => tracing::warn!(
                kind = job.mail.kind,
                to = %job.mail.to,
                capacity = MAIL_QUEUE_CAPACITY,
                "mail dropped: the mail queue is full"
            ),
            Err(TrySendError::Disconnected(job)) => tracing::error!(
                kind = job.mail.kind,
                to = %job.mail.to,
                "mail dropped: the delivery thread is gone"
            ),
        }
    }
}

/// The next job, or `None` when the mailer is gone.
fn next_job(jobs: &Mutex<Receiver<Job>>) -> Option<Job> {
    jobs.lock().ok()?.recv().ok()
}

fn worker(jobs: &Mutex<Receiver<Job>>) {
    // The transport of the last configuration: its pool keeps SMTP connections open between
    // mails; a settings change builds a new one.
    let mut cached: Option<(SmtpConfig, SmtpTransport)> = None;
    while let Some(mut job) = next_job(jobs) {
        let mut pause = MAIL_RETRY_PAUSE;
        for attempt in 1..=MAIL_ATTEMPTS {
            match deliver_with(&mut cached, &job.config, &job.mail) {
                Ok(()) => {
                    tracing::debug!(kind = job.mail.kind, to = %job.mail.to, "mail sent");
                    if let Some(on_sent) = job.on_sent.take() {
                        on_sent();
                    }
                    break;
                }
                Err(error) if attempt < MAIL_ATTEMPTS => {
                    tracing::warn!(kind = job.mail.kind, to = %job.mail.to, attempt, %error, "mail delivery failed; retrying");
                    cached = None;
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(error) => {
                    cached = None;
                    tracing::error!(
                        kind = job.mail.kind,
                        to = %job.mail.to,
                        host = %job.config.host,
                        port = job.config.port,
                        attempts = MAIL_ATTEMPTS,
                        %error,
                        "mail delivery failed; giving up"
                    );
                }
            }
        }
    }
}

fn deliver_with(
    cached: &mut Option<(SmtpConfig, SmtpTransport)>,
    config: &SmtpConfig,
    mail: &Mail,
) -> Result<(), String> {
    let message = mail.message(config)?;
    let transport = match cached {
        Some((current, transport)) if current == config => transport,
        _ => {
            let (_, transport) = cached.insert((config.clone(), config.transport()?));
            transport
        }
    };
    transport
        .send(&message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
