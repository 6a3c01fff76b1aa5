//! Messages on the single-instance socket (`<home>/whatnext.sock`): how `whatnext open URL`
//! and a second `whatnext run` hand over to the running controller. One JSON line each way.

use serde::{Deserialize, Serialize};

use crate::state::LinkAttempt;

/// Longest request line the controller reads.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocalRequest {
    /// Open a `whtnxt://` link. With `wait`, answer once the connection is up or failed.
    Open {
        url: String,
        #[serde(default)]
        wait: bool,
        #[serde(default)]
        timeout_secs: Option<f64>,
    },
    /// Another launch of the app: bring the running one to the user's attention.
    Show,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalResponse {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<LinkAttempt>,
    /// The controller's pid.
    pub pid: u32,
    /// URL of the controller's API and view.
    #[serde(default)]
    pub url: String,
}
