//! [`ClientError`]: what can go wrong talking to the controller. Each message says what
//! failed and, where there is something to do, what.

use whatnext_home::HomeError;

/// A failed call of the controller's API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No controller runs for the home (no `api.json`, or one it left behind when it was
    /// killed), or `api.json` cannot be read.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The request did not get through (timeout, reset, …).
    #[error("could not reach the controller at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The controller refused the request with an error answer, `{"error": message}`.
    #[error("{message}")]
    Api {
        /// The route called, e.g. `/api/playlists/abc/move`.
        route: String,
        /// The HTTP status, e.g. 404.
        status: u16,
        /// The controller's text: what was wrong and what to do.
        message: String,
    },
    /// An error status whose body is not an `{"error"}` answer (its first 1024 characters
    /// are kept).
    #[error("{route}: HTTP {} {body}", status_line(*.status))]
    Http {
        route: String,
        status: u16,
        body: String,
    },
    /// A success status whose body is not the answer the route promises (or is over the
    /// answer limit).
    #[error("unreadable answer from {route}")]
    BadAnswer {
        route: String,
        #[source]
        source: ureq::Error,
    },
    /// A bulk request larger than the controller accepts; nothing was sent.
    #[error(
        "the request to {route} is {bytes} bytes; the controller accepts at most {limit} bytes; split it into smaller ones"
    )]
    TooLarge {
        route: String,
        bytes: usize,
        limit: usize,
    },
    /// A request body that could not be written as JSON; nothing was sent.
    #[error("could not write the request to {route} as JSON")]
    Encode {
        route: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The HTTP status of an error answer, if the controller answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `404 Not Found`, as HTTP writes a status line.
fn status_line(status: u16) -> String {
    match ureq::http::StatusCode::from_u16(status) {
        Ok(code) => code.to_string(),
        Err(_) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_failed() {
        let api = ClientError::Api {
            route: "/api/x".into(),
            status: 404,
            message: "no playlist abc; see `whatnext playlist list`".into(),
        };
        assert_eq!(
            api.to_string(),
            "no playlist abc; see `whatnext playlist list`"
        );
        assert_eq!(api.status(), Some(404));
        let http = ClientError::Http {
            route: "/api/x".into(),
            status: 500,
            body: "boom".into(),
        };
        assert_eq!(
            http.to_string(),
            "/api/x: HTTP 500 Internal Server Error boom"
        );
    }
}
