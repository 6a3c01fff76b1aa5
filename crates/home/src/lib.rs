//! The WhatNext home directory and what lives in it: its paths ([`Home`]), the node's
//! identity (an Ed25519 key, 0600), the settings of `run` (`config.toml` under the flags),
//! the single-instance lock, the OS handler for `whtnxt://` links, logging to stderr and
//! `<home>/logs`, and atomic owner-only file writes ([`files::write_private_file`]).
//!
//! Invariant: this crate is sync: it uses no async runtime (no tokio, axum, hyper, tower or
//! futures), so the CLI, the relay and the controller all use it as is.

pub mod config;
pub mod error;
pub mod files;
pub mod home;
pub mod identity;
pub mod logging;
pub mod os_handler;
pub mod single_instance;

pub use error::HomeError;
pub use home::{ApiInfo, Home, ViewInfo};
