//! The child process's lifecycle: spawning `whatnext p2p` in its own process group, the
//! restart policy and its crash-loop guard, the heartbeat (and memory bound) that tells a
//! hung service from a busy one, stopping it, and telling why it ended.

use std::{
    collections::VecDeque,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine as _;
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::Child,
};

/// Restart policy (DESIGN.md §1).
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Give up after this many crashes within `crash_window`.
    pub max_crashes: usize,
    pub crash_window: Duration,
    /// An incarnation that lived this long resets the backoff.
    pub stable_after: Duration,
    pub heartbeat_interval: Duration,
    /// No frame from the service for this long means it hangs: it is killed and restarted.
    pub heartbeat_timeout: Duration,
    /// Time allowed from spawn to `ready`.
    pub ready_timeout: Duration,
    /// Resident memory the service may use; above it (a flood that got past the connection
    /// limits, a leak) it is restarted like a crashed one. Checked with each heartbeat here,
    /// because the sandboxed service cannot read /proc itself.
    pub max_service_rss_bytes: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_crashes: 5,
            crash_window: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(4),
            ready_timeout: Duration::from_secs(10),
            max_service_rss_bytes: 512 * 1024 * 1024,
        }
    }
}

/// The crash-loop guard: counts crashes, says how long to wait before the next start, and
/// gives up when the service keeps crashing.
#[derive(Debug, Default)]
pub(super) struct CrashGuard {
    /// When the crashes within the policy's window happened.
    crashes: VecDeque<Instant>,
    /// Crashes since the last incarnation that ran long enough to count as stable.
    consecutive_crashes: u32,
}

impl CrashGuard {
    /// Records the crash of an incarnation that ran for `lived` and failed with `reason`.
    /// Returns how long to wait before the next start, or, when the service crashed too often
    /// within the window, why it is not restarted.
    pub(super) fn crashed(
        &mut self,
        lived: Duration,
        reason: &str,
        policy: &RestartPolicy,
    ) -> Result<Duration, String> {
        if lived >= policy.stable_after {
            self.consecutive_crashes = 0;
        }
        self.consecutive_crashes += 1;
        let now = Instant::now();
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.crash_window)
        {
            self.crashes.pop_front();
        }
        if self.crashes.len() >= policy.max_crashes {
            return Err(format!(
                "the network service crashed {} times within {:?}; not restarting it (last failure: {reason})",
                self.crashes.len(),
                policy.crash_window
            ));
        }
        Ok(self.backoff(policy))
    }

    /// No wait after a first crash (most are one-offs, and every millisecond is a gap in
    /// the user's session); then `first_backoff`, doubling up to `max_backoff`.
    fn backoff(&self, policy: &RestartPolicy) -> Duration {
        match self.consecutive_crashes {
            0 | 1 => Duration::ZERO,
            n => {
                let exp = (n - 2).min(16);
                (policy.first_backoff * 2u32.pow(exp)).min(policy.max_backoff)
            }
        }
    }
}

/// Starts `<program> p2p` with piped stdin, stdout and stderr, killed when dropped.
pub(super) fn spawn(program: &Path) -> std::io::Result<Child> {
    let mut command = tokio::process::Command::new(program);
    command
        .arg("p2p")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: Ctrl-C in a terminal reaches only the controller, which
    // then stops the service in order instead of seeing it "crash".
    #[cfg(unix)]
    command.process_group(0);
    let child = command.spawn()?;
    #[cfg(target_os = "linux")]
    {
        // Audio crosses these pipes in 256 KiB groups: with the default 64 KiB a group
        // takes four turns of writer and reader, and the service's loop waits for each.
        // Best effort: a smaller pipe is only slower.
        use nix::fcntl::{FcntlArg, fcntl};
        for fd in [
            child.stdin.as_ref().map(std::os::fd::AsFd::as_fd),
            child.stdout.as_ref().map(std::os::fd::AsFd::as_fd),
        ]
        .into_iter()
        .flatten()
        {
            let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
        }
    }
    Ok(child)
}

/// The size asked for the pipes to and from the service (Linux's default ceiling for
/// unprivileged processes, `/proc/sys/fs/pipe-max-size`).
#[cfg(target_os = "linux")]
const PIPE_BYTES: nix::libc::c_int = 1 << 20;

/// The heartbeat of one incarnation: a ping every `heartbeat_interval`; a pong proves both
/// pipes move (the ping went through stdin and the answer came back).
pub(super) struct Heartbeat {
    interval: tokio::time::Interval,
    last_pong: Instant,
    /// When any frame last came from the service.
    last_heard: Instant,
}

/// How many heartbeat timeouts a service that keeps sending events may go without a pong
/// before it counts as hung: it is alive but not reading its commands. On a loaded machine
/// a busy service's pong can be late by several seconds while it works through a sync
/// (seen: 11.8 s with two members adding 15,000 tracks next to two busy processes on 2
/// cores), and a restart then would only drop its connections and start the sync over.
const BUSY_PONG_TIMEOUTS: u32 = 8;

impl Heartbeat {
    pub(super) fn new(policy: &RestartPolicy) -> Self {
        let mut interval = tokio::time::interval(policy.heartbeat_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            interval,
            last_pong: Instant::now(),
            last_heard: Instant::now(),
        }
    }

    /// A frame arrived from the service (the pong, or anything else).
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next beat.
    pub(super) async fn tick(&mut self) {
        self.interval.tick().await;
    }

    /// A pong arrived.
    pub(super) fn pong(&mut self) {
        self.last_pong = Instant::now();
        self.last_heard = self.last_pong;
    }

    /// At a beat: why the service must be restarted, if it must — nothing heard from it for
    /// longer than `heartbeat_timeout`, or no pong for [`BUSY_PONG_TIMEOUTS`] times that
    /// while it sends other events (`pipe_full`: its command pipe is full too), or resident
    /// memory over the bound.
    pub(super) fn check(
        &self,
        child: &Child,
        pipe_full: bool,
        policy: &RestartPolicy,
    ) -> Result<(), String> {
        let silent = self.last_heard.elapsed() > policy.heartbeat_timeout;
        let busy_but_deaf =
            self.last_pong.elapsed() > policy.heartbeat_timeout * BUSY_PONG_TIMEOUTS;
        if silent || busy_but_deaf {
            let pipe = if pipe_full {
                "; its command pipe has been full all that time"
            } else {
                ""
            };
            return Err(format!(
                "the service stopped answering heartbeats for {:?}{pipe}",
                self.last_pong.elapsed()
            ));
        }
        if let Some(rss) = child.id().and_then(resident_bytes)
            && rss > policy.max_service_rss_bytes
        {
            return Err(format!(
                "the service used {} MB of memory, over its bound of {} MB; restarted",
                rss >> 20,
                policy.max_service_rss_bytes >> 20
            ));
        }
        Ok(())
    }
}

/// Resident memory of process `pid` (VmRSS), if it can be read.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// How long a service asked to shut down gets before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Gives a service that was asked to shut down a grace period to exit, then kills it.
pub(super) async fn stop_gracefully(child: &mut Child) {
    if tokio::time::timeout(SHUTDOWN_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Why the service ended, once its output closed.
pub(super) async fn exit_reason(child: &mut Child) -> String {
    match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
        Ok(Ok(status)) => describe_exit(status),
        Ok(Err(err)) => format!("the service's status is unknown: {err}"),
        Err(_) => "the service closed its output but kept running".to_string(),
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            return format!("the network service was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("the network service exited with status {code}"),
        None => "the network service exited".to_string(),
    }
}

/// Re-emits the service's stderr lines under the `p2p` target, at their own level.
pub(super) async fn relay_logs(stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let trimmed = line.trim_start();
        let (level, rest) = trimmed.split_once(' ').unwrap_or(("", trimmed));
        match level {
            "ERROR" => tracing::error!(target: "p2p", "{rest}"),
            "WARN" => tracing::warn!(target: "p2p", "{rest}"),
            "INFO" => tracing::info!(target: "p2p", "{rest}"),
            "DEBUG" => tracing::debug!(target: "p2p", "{rest}"),
            "TRACE" => tracing::trace!(target: "p2p", "{rest}"),
            _ => tracing::info!(target: "p2p", "{trimmed}"),
        }
    }
}

/// Encodes the identity for `start_node`.
pub fn encode_keypair(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_is_immediate_then_backoff_doubles_up_to_the_cap() {
        let policy = RestartPolicy::default();
        let mut guard = CrashGuard::default();
        let mut seen = vec![];
        for n in 1..=10 {
            guard.consecutive_crashes = n;
            seen.push(guard.backoff(&policy).as_millis());
        }
        assert_eq!(
            seen,
            vec![0, 100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]
        );
    }
}
