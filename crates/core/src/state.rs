//! The controller's single source of truth: one `AppState` behind a watch channel.
//!
//! Every mutation goes through [`StateHandle::update`], which bumps `version` when the
//! closure reports a change. Readers never see a torn state, and long-pollers wake on the
//! exact change they were waiting for.

use tokio::sync::watch;
use whatnext_protocol::state::AppState;

#[derive(Clone)]
pub struct StateHandle {
    tx: watch::Sender<AppState>,
}

impl StateHandle {
    pub fn new(mut initial: AppState) -> Self {
        initial.derive_services();
        let (tx, _rx) = watch::channel(initial);
        Self { tx }
    }

    /// Applies `change`; if it returns true the version grows and watchers wake. What the
    /// state derives from itself (`services`) is refreshed in the same step, so no reader
    /// sees the two disagree.
    pub fn update(&self, change: impl FnOnce(&mut AppState) -> bool) {
        self.tx.send_if_modified(|state| {
            let changed = change(state);
            if changed {
                state.derive_services();
                state.version += 1;
            }
            changed
        });
    }

    pub fn snapshot(&self) -> AppState {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<AppState> {
        self.tx.subscribe()
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Longest text kept in the state (a link, a session, each error, `last_error`, dial
/// failures): a hostile link or a chatty network must not grow `/api/state`,
/// which every client polls. Longer texts are cut at a character boundary and end in `…`;
/// the log keeps them whole.
pub const MAX_STATE_TEXT: usize = 2048;

/// `text` cut to at most `max` bytes (plus `…` when cut), at a character boundary.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Records a problem as the state's `last_error`, clipped; `about` (a peer id,
/// [`PROBLEM_SERVICE`](whatnext_protocol::state::PROBLEM_SERVICE) or none) says what ends it.
pub fn report_problem(s: &mut AppState, message: &str, about: Option<&str>) {
    s.last_error = Some(clip(message, MAX_STATE_TEXT));
    s.last_error_about = about.map(str::to_string);
}

/// Clears `last_error` when it is about `about`, which is fine again; returns whether it did.
pub fn problem_over(s: &mut AppState, about: &str) -> bool {
    if s.last_error_about.as_deref() != Some(about) {
        return false;
    }
    s.last_error = None;
    s.last_error_about = None;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_texts_end_at_a_char_boundary_with_an_ellipsis() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc…");
        // "é" is two bytes: never cut inside it.
        assert_eq!(clip("aé", 2), "a…");
        let long = "x".repeat(100_000);
        assert!(clip(&long, MAX_STATE_TEXT).len() <= MAX_STATE_TEXT + '…'.len_utf8());
    }
}
