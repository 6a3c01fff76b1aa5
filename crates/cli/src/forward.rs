//! The client side of the single-instance socket: hand a link (or "show yourself") to the
//! controller that owns the home, starting one first when none runs.

use std::{
    io,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use interprocess::local_socket::tokio::{Stream, prelude::*};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use whatnext_controller::local_socket::socket_name;
use whatnext_home::Home;
use whatnext_protocol::local::{LocalRequest, LocalResponse, MAX_LINE};

/// How long a freshly started controller may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub enum Forwarded {
    Answered(Box<LocalResponse>),
    /// No controller listens on this home's socket.
    NotRunning,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start an async runtime")
}

/// Sends one request and reads the answer, waiting at most `timeout` for it.
pub fn send(home: &Home, request: &LocalRequest, timeout: Duration) -> anyhow::Result<Forwarded> {
    runtime()?.block_on(async {
        let name = socket_name(home)?;
        let conn = match Stream::connect(name).await {
            Ok(conn) => conn,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(Forwarded::NotRunning);
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "could not reach the controller's socket {}",
                        home.socket_path().display()
                    )
                });
            }
        };
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        (&conn).write_all(&line).await?;
        let mut answer = String::new();
        let mut reader = BufReader::new(&conn).take(MAX_LINE as u64);
        tokio::time::timeout(timeout, reader.read_line(&mut answer))
            .await
            .map_err(|_| anyhow::anyhow!("the controller did not answer within {timeout:?}"))??;
        let response = serde_json::from_str(answer.trim_end())
            .with_context(|| format!("unreadable answer from the controller: {answer:?}"))?;
        Ok(Forwarded::Answered(Box::new(response)))
    })
}

/// Starts `whatnext run --no-browser` for `home` in the background (detached from this
/// terminal) and waits until its socket answers.
pub fn start_controller(home: &Home) -> anyhow::Result<()> {
    let binary = std::env::current_exe().context("cannot find the whatnext binary")?;
    home.create()?;
    let logs = home.logs_dir();
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let log_path = logs.join("autostart.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let home_dir = std::path::absolute(home.dir()).unwrap_or_else(|_| home.dir().to_path_buf());
    let mut command = Command::new(binary);
    command
        .arg("--home")
        .arg(&home_dir)
        .args(["run", "--no-browser"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .context("could not start the WhatNext controller")?;

    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the WhatNext controller exited at start ({status}):\n{}",
                tail(&log_path, 10)
            );
        }
        if let Forwarded::Answered(_) = send(home, &LocalRequest::Show, Duration::from_secs(5))? {
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "the WhatNext controller did not become ready within {START_TIMEOUT:?}; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
