//! HTTP routes of the listening session: `GET /api/playlists/{id}/session` (the session as
//! `whatnext session now --json` prints it), `POST /api/playlists/{id}/session` with one
//! [`SessionAction`] (answers the session after it; 403 when the session's rules forbid it
//! to this member, with who may), and `POST /api/playlists/{id}/session/save`.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use whatnext_protocol::{
    api::{CreatedReply, SaveHistoryRequest},
    listening::SessionAction,
};

use crate::{context::Api, error::ApiError};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/playlists/{id}/session", get(now).post(act))
        .route("/api/playlists/{id}/session/save", post(save))
}

type Reply = Result<Response, ApiError>;

async fn now(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Reply {
    Ok(Json(api.core().session(&id).await?).into_response())
}

async fn act(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(action): Json<SessionAction>,
) -> Reply {
    Ok(Json(api.core().session_act(&id, action).await?).into_response())
}

async fn save(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(req): Json<SaveHistoryRequest>,
) -> Reply {
    let created = api.core().save_session_history(&id, &req.name).await?;
    Ok(Json(CreatedReply { id: created }).into_response())
}
