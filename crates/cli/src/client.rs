//! The CLI's client for the controller's loopback API. It finds the URL and token in
//! `<home>/api.json`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Serialize, de::DeserializeOwned};
use whatnext_home::{ApiInfo, Home, HomeError};

/// Largest answer read (ureq's default, 10 MB, is less than a big playlist's JSON).
const MAX_ANSWER_BYTES: u64 = 512 * 1024 * 1024;

pub struct Client {
    home: Home,
    info: ApiInfo,
}

impl Client {
    /// Fails with "not running" when no controller runs for `home`.
    pub fn for_home(home: &Home) -> anyhow::Result<Self> {
        let info = home.read_api_info()?;
        Ok(Self {
            home: home.clone(),
            info,
        })
    }

    fn agent(&self, timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.info.url)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.info.token)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> anyhow::Result<T> {
        let response = self
            .agent(timeout)
            .get(&self.url(path))
            .header("Authorization", &self.auth())
            .call();
        self.read_json(path, response)
    }

    /// A GET whose answer is text (e.g. a Markdown export).
    pub fn get_text(&self, path: &str, timeout: Duration) -> anyhow::Result<String> {
        let response = self
            .agent(timeout)
            .get(&self.url(path))
            .header("Authorization", &self.auth())
            .call();
        let mut response = self.check(path, response)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .with_context(|| format!("unreadable answer from {path}"))
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let response = self
            .agent(timeout)
            .post(&self.url(path))
            .header("Authorization", &self.auth())
            .send_json(body);
        self.read_json(path, response)
    }

    /// A POST of a JSON body the caller serialized (and so could size) itself.
    pub fn post_json_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> anyhow::Result<T> {
        let response = self
            .agent(timeout)
            .post(&self.url(path))
            .header("Authorization", &self.auth())
            .header("Content-Type", "application/json")
            .send(body);
        self.read_json(path, response)
    }

    pub fn delete<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> anyhow::Result<T> {
        let response = self
            .agent(timeout)
            .delete(&self.url(path))
            .header("Authorization", &self.auth())
            .call();
        self.read_json(path, response)
    }

    fn read_json<T: DeserializeOwned>(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        self.check(path, response)?
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_json()
            .with_context(|| format!("unreadable answer from {path}"))
    }

    /// Turns transport failures and error statuses into errors that say what happened.
    fn check(
        &self,
        path: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let mut response = match response {
            Ok(response) => response,
            Err(ureq::Error::Io(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                // api.json outlived its controller (e.g. after `kill -9`).
                return Err(HomeError::NotRunning {
                    home: self.home.dir().to_path_buf(),
                }
                .into());
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("could not reach the controller at {}", self.info.url)
                });
            }
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| {
                let text: String = text.chars().take(1024).collect();
                format!("{path}: HTTP {} {text}", response.status())
            });
        bail!("{message}")
    }
}
