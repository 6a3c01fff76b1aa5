//! The API's error answers: every one is `{"error": "…"}` with a status that says what
//! kind of failure it was.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use whatnext_core::supervisor::{PeerError, ServiceError};
use whatnext_protocol::api::ErrorReply;
use whatnext_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorReply {
            error: self.message,
        });
        (self.status, body).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let status = match err {
            ServiceError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ServiceError::Unexpected { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<PeerError> for ApiError {
    fn from(err: PeerError) -> Self {
        match err {
            PeerError::Failed(reason) => ApiError::new(StatusCode::BAD_GATEWAY, reason),
            PeerError::Refused(message) => ApiError::new(StatusCode::BAD_REQUEST, message),
            PeerError::Service(err) => err.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let status = match &err {
            StoreError::UnknownPlaylist(_) | StoreError::UnknownTrack { .. } => {
                StatusCode::NOT_FOUND
            }
            StoreError::Invalid(_)
            | StoreError::IndexOutOfRange { .. }
            | StoreError::BadMarkdown(_) => StatusCode::BAD_REQUEST,
            StoreError::Exists(_) => StatusCode::CONFLICT,
            StoreError::NotAllowed(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}
