//! An SMTP sink for the mail tests: `smtp_sink.py` (Python `aiosmtpd`, installed by
//! `.ci/run`) on a free loopback port, writing each received mail as JSON into a temporary
//! directory that the test reads. The sink stops when the [`Sink`] is dropped (its stdin
//! closes; the process is killed as well).

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for mails to arrive.
pub const MAIL_WAIT: Duration = Duration::from_secs(20);

/// A running sink.
pub struct Sink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    /// Starts the sink and waits until it listens.
    pub fn start() -> Sink {
        let dir = tempfile::tempdir().expect("sink dir");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/mail_support/smtp_sink.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed (.ci/run installs aiosmtpd)");
        let stdout = child.stdout.take().expect("sink stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sink output");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP sink did not start (is aiosmtpd installed? run .ci/run): {line:?}")
            });
        Sink { port, dir, child }
    }

    /// The mails received so far, in arrival order.
    pub fn mails(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("sink dir")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                serde_json::from_str(&std::fs::read_to_string(path).expect("mail")).expect("json")
            })
            .collect()
    }

    /// Waits until at least `count` mails arrived (panics after [`MAIL_WAIT`]).
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                start.elapsed() < MAIL_WAIT,
                "expected {count} mails, got {}: {mails:?}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token in a mailed link `…/<route>/<token>`.
pub fn token_in(mail: &Value, route: &str) -> String {
    let text = mail["text"].as_str().expect("text part");
    let at = text
        .find(route)
        .unwrap_or_else(|| panic!("no {route} link in {text}"))
        + route.len()
        + 1;
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

/// The code in an OTP mail (the digits after "one-time password is: ").
pub fn otp_code_in(mail: &Value) -> String {
    let text = mail["text"].as_str().expect("text");
    let at = text.find("one-time password is: ").expect("otp text") + 22;
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}
