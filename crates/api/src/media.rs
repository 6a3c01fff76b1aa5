//! The music library and its audio over HTTP: `POST /api/library/scan`, `GET /api/library
//! [?q=…][&limit=N]`, `POST /api/library/file`, and `GET /media/<blake3>` — the bytes of a file this
//! home has, with HTTP Range (the view's `<audio>` element seeks with it) and the file's
//! type, and `GET /media/<blake3>/cover` — the cover picture in its tags. Same guard as every route: the token or the view's cookie.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tower::ServiceExt as _;
use whatnext_core::music::MusicError;
use whatnext_media::MediaError;
use whatnext_protocol::media::LibraryFileRequest;

use crate::{context::Api, error::ApiError};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/library", get(list))
        .route("/api/library/scan", post(scan))
        .route("/api/library/file", post(add_file))
        .route("/media/{blake3}", get(media))
        .route("/media/{blake3}/cover", get(cover))
}

type Reply = Result<Response, ApiError>;

impl From<MusicError> for ApiError {
    fn from(err: MusicError) -> Self {
        let status = match &err {
            MusicError::Media(MediaError::NotAudio { .. }) => StatusCode::BAD_REQUEST,
            MusicError::Media(MediaError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
    /// At most this many entries (and at most `MAX_LISTED`, the default).
    limit: Option<usize>,
}

async fn list(State(api): State<Arc<Api>>, Query(search): Query<Search>) -> Reply {
    let limit = search.limit.unwrap_or(usize::MAX);
    Ok(Json(api.core().music().find(search.q.as_deref(), limit, true)).into_response())
}

async fn scan(State(api): State<Arc<Api>>) -> Reply {
    Ok(Json(api.core().music().scan().await?).into_response())
}

async fn add_file(State(api): State<Arc<Api>>, Json(req): Json<LibraryFileRequest>) -> Reply {
    let path = std::path::PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not an absolute path", req.path),
        ));
    }
    Ok(Json(api.core().music().add_file(path).await?).into_response())
}

async fn media(State(api): State<Arc<Api>>, Path(blake3): Path<String>, request: Request) -> Reply {
    let Some((path, content)) = api.core().music().media(&blake3) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("this home has no audio with content id {blake3}"),
        ));
    };
    let mime: mime::Mime = content
        .mime
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    // tower-http's ServeFile answers Range (206, Content-Range, 416) and conditional requests.
    let Ok(served) = tower_http::services::ServeFile::new_with_mime(path, &mime)
        .oneshot(request)
        .await;
    let mut response = served.into_response();
    // The bytes never change for a content id.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}

const RASTER_PICTURES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
];

/// The cover picture embedded in a file this home has (404 when it has none: the view then
/// draws a tile instead).
async fn cover(State(api): State<Arc<Api>>, Path(blake3): Path<String>) -> Reply {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("this home has no cover picture for content id {blake3}"),
        )
    };
    let Some((path, _)) = api.core().music().media(&blake3) else {
        return Err(not_found());
    };
    let read = tokio::task::spawn_blocking(move || whatnext_media::cover_art(&path))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let Some((bytes, mime)) = read.map_err(|e| ApiError::from(MusicError::Media(e)))? else {
        return Err(not_found());
    };
    // Raster pictures only: an SVG from a file's tags could carry script.
    if !RASTER_PICTURES.contains(&mime.as_str()) {
        return Err(not_found());
    }
    let mime = HeaderValue::from_str(&mime)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
            // Served as a picture only, never sniffed into something else.
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}
