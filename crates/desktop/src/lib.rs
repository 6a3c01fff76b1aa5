//! The native window of WhatNext: the same embedded view as the browser, in a wry web view
//! inside a tao window, with a tray (Open / Copy invite / Quit) and desktop notifications.
//!
//! The controller runs on its own thread exactly as in `whatnext run`; the window lives on
//! the main thread (GTK and AppKit insist) and hears from the controller through
//! [`UiHooks`](whatnext_controller::ui::UiHooks): the login URL once it runs, links handed
//! over by another launch (→ raise the window), failed links and friends joining
//! (→ notifications). Closing the window hides it; the node keeps running until Quit.
//!
//! Without the `gui` feature (the default build) this crate has no GUI dependencies and
//! [`run`] explains how to get a window.

#[cfg(feature = "gui")]
mod window;

use whatnext_home::{Home, config::RunFlags};

/// Runs the controller beside a native window until Quit (or a signal).
#[cfg(feature = "gui")]
pub fn run(home: Home, flags: RunFlags) -> anyhow::Result<()> {
    window::run(home, flags)
}

/// Runs the controller beside a native window: not in this build.
#[cfg(not(feature = "gui"))]
pub fn run(_home: Home, _flags: RunFlags) -> anyhow::Result<()> {
    anyhow::bail!(
        "this whatnext was built without a desktop window; build it with `cargo build --release --features desktop` (README), or run with --no-window"
    )
}
