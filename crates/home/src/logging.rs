//! Logs go to stderr and to daily files under `<home>/logs`; `RUST_LOG` filters both.
//! The network service's lines arrive through its stderr and are re-emitted under `p2p`.

use tracing_appender::{non_blocking::WorkerGuard, rolling};
use tracing_subscriber::{
    EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::home::Home;

/// WhatNext's own info (every crate's target starts with `whatnext`; the service's lines
/// arrive under `p2p`) and everyone's warnings: another crate's info (Loro's encoder
/// diagnostics, libp2p's chatter) is noise to a person reading the terminal.
pub const DEFAULT_FILTER: &str = "warn,whatnext=info,p2p=info";

/// Keep the returned guard alive: dropping it flushes and stops the file writer.
pub fn init(home: &Home) -> Option<WorkerGuard> {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(filter());
    // The appender prunes old files by listing the directory, which must exist first.
    let _ = std::fs::create_dir_all(home.logs_dir());
    let appender = rolling::Builder::new()
        .rotation(rolling::Rotation::DAILY)
        .filename_prefix("whatnext")
        .filename_suffix("log")
        .max_log_files(7)
        .build(home.logs_dir());
    match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file_layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter());
            let _ = tracing_subscriber::registry()
                .with(stderr_layer)
                .with(file_layer)
                .try_init();
            Some(guard)
        }
        Err(err) => {
            let _ = tracing_subscriber::registry().with(stderr_layer).try_init();
            tracing::warn!(
                "cannot write log files under {} ({err}); logging to stderr only",
                home.logs_dir().display()
            );
            None
        }
    }
}
