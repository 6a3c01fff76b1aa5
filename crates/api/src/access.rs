//! Who may use the API and the view: the per-run bearer token (in `api.json`), the view's
//! session cookie secret (kept across restarts in `view.json`) and the one-time login links
//! that hand a browser that cookie.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use whatnext_core::secret::same_secret;

/// How long a login link stays valid.
const LOGIN_TTL: Duration = Duration::from_secs(300);

/// How clients reach and prove themselves to this controller's API.
pub struct Access {
    /// Base URL of the HTTP API and view.
    url: String,
    /// Bearer token of the HTTP API.
    token: String,
    /// Value of the view's HttpOnly session cookie (kept across restarts in view.json).
    view_secret: String,
    /// One-time login tokens for the view, with their expiry.
    login_tokens: Mutex<HashMap<String, Instant>>,
}

impl Access {
    pub fn new(url: String, token: String, view_secret: String) -> Self {
        Self {
            url,
            token,
            view_secret,
            login_tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Base URL of the HTTP API and view.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether `presented` is the API's bearer token.
    pub fn is_token(&self, presented: &str) -> bool {
        same_secret(presented.as_bytes(), self.token.as_bytes())
    }

    /// Whether `presented` is the view's session cookie.
    pub fn is_view_secret(&self, presented: &str) -> bool {
        same_secret(presented.as_bytes(), self.view_secret.as_bytes())
    }

    /// The view's session cookie value, set by a login.
    pub fn view_secret(&self) -> &str {
        &self.view_secret
    }

    /// A fresh one-time login URL.
    pub fn new_login_url(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 24]>());
        let mut tokens = self.login_tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + LOGIN_TTL);
        format!("{}/login?t={token}", self.url)
    }

    /// Whether `presented` is a login token given out and not expired; it is used up either
    /// way.
    pub fn redeem_login_token(&self, presented: &str) -> bool {
        let mut tokens = self.login_tokens.lock().unwrap_or_else(|p| p.into_inner());
        let found = tokens
            .keys()
            .find(|t| same_secret(t.as_bytes(), presented.as_bytes()))
            .cloned();
        // One use only: the URL may sit in a browser history or a terminal's scrollback.
        found
            .and_then(|t| tokens.remove(&t))
            .is_some_and(|expires| expires > Instant::now())
    }
}
