//! `pocketlog install-service`: writes a hardened systemd unit that runs `pocketlog serve` on a
//! data dir (the PocketBase tutorial's deploy step), and prints the `systemctl` commands that
//! enable it. Nothing here talks to systemd.
//!
//! Invariants of the unit: the service restarts on failure; it runs with no new privileges
//! and a read-only file system except its data dir (`ProtectSystem=strict` +
//! `ReadWritePaths`); it may bind ports below 1024 as a non-root user
//! (`AmbientCapabilities=CAP_NET_BIND_SERVICE`, the only capability it keeps); its stop
//! timeout is longer than `serve`'s shutdown drain, so systemd never kills a server that is
//! still finishing acknowledged writes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Open files allowed to the service (each SSE client and connection holds one).
pub const LIMIT_NOFILE: u64 = 65536;
/// Seconds systemd waits after SIGTERM (serve drains connections for up to 30 s).
pub const STOP_TIMEOUT_SECS: u64 = 45;
/// Where units are written by default.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// What the unit runs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The unit name (`<name>.service`).
    pub name: String,
    /// The account the server runs as (`None`: root).
    pub user: Option<String>,
    /// The absolute path of the `pocketlog` binary.
    pub exe: PathBuf,
    /// The absolute data dir.
    pub dir: PathBuf,
    /// `serve`'s arguments after `--dir` (addresses, domains, flags).
    pub serve_args: Vec<String>,
    /// The variable of `--encryptionEnv`, read from `/etc/<name>.env` (kept out of the unit).
    pub encryption_env: Option<String>,
}

impl Spec {
    /// The environment file that holds the settings key (with `--encryptionEnv`).
    pub fn env_file(&self) -> Option<PathBuf> {
        self.encryption_env
            .as_ref()
            .map(|_| PathBuf::from(format!("/etc/{}.env", self.name)))
    }
}

/// Quotes one `ExecStart` word the way systemd reads it (double quotes when needed).
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+[]".contains(c))
    {
        return word.to_string();
    }
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The unit file's text.
pub fn unit(spec: &Spec) -> String {
    let dir = spec.dir.display().to_string();
    let work = spec.dir.parent().unwrap_or(Path::new("/"));
    let mut exec = vec![
        quote(&spec.exe.display().to_string()),
        "serve".to_string(),
        "--dir".to_string(),
        quote(&dir),
    ];
    exec.extend(spec.serve_args.iter().map(|arg| quote(arg)));
    let mut out = String::new();
    let _ = writeln!(out, "# Written by `pocketlog install-service`.");
    let _ = writeln!(out, "[Unit]");
    let _ = writeln!(out, "Description=pocketlog ({})", spec.name);
    let _ = writeln!(out, "After=network-online.target");
    let _ = writeln!(out, "Wants=network-online.target");
    let _ = writeln!(out);
    let _ = writeln!(out, "[Service]");
    let _ = writeln!(out, "Type=simple");
    if let Some(user) = &spec.user {
        let _ = writeln!(out, "User={user}");
        let _ = writeln!(out, "Group={user}");
    }
    let _ = writeln!(
        out,
        "WorkingDirectory={}",
        quote(&work.display().to_string())
    );
    if let Some(file) = spec.env_file() {
        let _ = writeln!(
            out,
            "EnvironmentFile={}",
            quote(&file.display().to_string())
        );
    }
    let _ = writeln!(out, "ExecStart={}", exec.join(" "));
    let _ = writeln!(out, "Restart=on-failure");
    let _ = writeln!(out, "RestartSec=5s");
    let _ = writeln!(out, "KillSignal=SIGTERM");
    let _ = writeln!(out, "TimeoutStopSec={STOP_TIMEOUT_SECS}s");
    let _ = writeln!(out, "LimitNOFILE={LIMIT_NOFILE}");
    let _ = writeln!(out, "# Ports below 1024 without root; no other capability.");
    let _ = writeln!(out, "AmbientCapabilities=CAP_NET_BIND_SERVICE");
    let _ = writeln!(out, "CapabilityBoundingSet=CAP_NET_BIND_SERVICE");
    let _ = writeln!(out, "NoNewPrivileges=true");
    let _ = writeln!(
        out,
        "# Read-only system; the data dir is the one writable path."
    );
    let _ = writeln!(out, "ProtectSystem=strict");
    let _ = writeln!(out, "ReadWritePaths={}", quote(&dir));
    let _ = writeln!(out, "ProtectHome=read-only");
    let _ = writeln!(out, "PrivateTmp=true");
    let _ = writeln!(out, "PrivateDevices=true");
    let _ = writeln!(out, "ProtectKernelTunables=true");
    let _ = writeln!(out, "ProtectKernelModules=true");
    let _ = writeln!(out, "ProtectControlGroups=true");
    let _ = writeln!(out, "RestrictSUIDSGID=true");
    let _ = writeln!(out, "RestrictRealtime=true");
    let _ = writeln!(out, "LockPersonality=true");
    let _ = writeln!(out, "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX");
    let _ = writeln!(out, "SystemCallArchitectures=native");
    let _ = writeln!(out, "UMask=0077");
    let _ = writeln!(out);
    let _ = writeln!(out, "[Install]");
    let _ = writeln!(out, "WantedBy=multi-user.target");
    out
}

/// The commands that enable and start the unit (printed after writing it).
pub fn next_steps(spec: &Spec, path: &Path) -> String {
    let name = &spec.name;
    let mut out = format!("Wrote {}\n", path.display());
    if let Some(user) = &spec.user {
        let _ = writeln!(
            out,
            "The data dir must belong to {user}: sudo mkdir -p {dir} && sudo chown -R {user}: {dir}",
            dir = spec.dir.display()
        );
    }
    if let (Some(env), Some(file)) = (&spec.encryption_env, spec.env_file()) {
        let _ = writeln!(
            out,
            "Put the settings key in {file}: echo '{env}=<32 characters>' | sudo tee {file} && sudo chmod 600 {file}",
            file = file.display()
        );
    }
    let _ = writeln!(out, "Enable and start it:");
    let _ = writeln!(out, "  sudo systemctl daemon-reload");
    let _ = writeln!(out, "  sudo systemctl enable --now {name}.service");
    let _ = writeln!(out, "  systemctl status {name}.service");
    let _ = writeln!(out, "  journalctl -u {name}.service -f");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_escapes_the_rest() {
        assert_eq!(
            quote("/usr/local/bin/pocketlog"),
            "/usr/local/bin/pocketlog"
        );
        assert_eq!(quote("0.0.0.0:80"), "0.0.0.0:80");
        assert_eq!(quote("/srv/my data"), "\"/srv/my data\"");
        assert_eq!(quote("a$b%c\"d"), "\"a$$b%%c\\\"d\"");
    }
}
