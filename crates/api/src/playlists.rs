//! HTTP routes for playlists. Every route goes through the [`Library`], so the controller
//! stays the store's only writer and every change bumps the state version.
//!
//! [`Library`]: whatnext_core::library::Library

use std::{collections::HashSet, sync::Arc};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use whatnext_core::{invite::invite_link, sessions::ShareError};
use whatnext_protocol::api::{
    AddTracksRequest, AddedTrack, AddedTracks, CreatePlaylistRequest, CreatedReply, ExportQuery,
    ImportRequest, LinkReply, MAX_BULK_BODY_BYTES, MAX_IMPORT_BYTES, MoveRequest, OkReply,
    PlaylistView, RenameRequest, RevokeRequest, ShareRequest,
};
use whatnext_store::formats;

use crate::{context::Api, error::ApiError};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/playlists", get(list).post(create))
        // The bulk routes take bodies far above axum's default 2 MB (a 6,000-track export is
        // more); every other route keeps the default.
        .route(
            "/api/playlists/import",
            post(import).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .route("/api/playlists/{id}", get(show).delete(remove_playlist))
        .route("/api/playlists/{id}/rename", post(rename))
        .route(
            "/api/playlists/{id}/tracks",
            post(add).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .route("/api/playlists/{id}/move", post(move_track))
        .route(
            "/api/playlists/{id}/tracks/{track_id}",
            delete(remove_track),
        )
        .route("/api/playlists/{id}/export", get(export))
        .route("/api/playlists/{id}/share", post(share))
        .route("/api/playlists/{id}/revoke", post(revoke))
}

type Reply = Result<Response, ApiError>;

/// The JSON body of a bulk route, up to [`MAX_BULK_BODY_BYTES`] (the route's
/// `DefaultBodyLimit`). Refusals are `{"error"}` answers: too large is 413 naming the size
/// and the limit, decided from `Content-Length` before any of the body is read.
struct BulkJson<T>(T);

impl<T, S> FromRequest<S> for BulkJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(size) = declared
            && size > MAX_BULK_BODY_BYTES as u64
        {
            return Err(body_too_large(Some(size)));
        }
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(BulkJson(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(body_too_large(declared))
            }
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

fn mib(bytes: usize) -> usize {
    bytes / (1024 * 1024)
}

fn body_too_large(size: Option<u64>) -> ApiError {
    let size = size.map_or_else(|| "larger than that".to_string(), |s| format!("{s} bytes"));
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is {size}; the limit of this route is {MAX_BULK_BODY_BYTES} bytes ({} MiB of JSON, enough for an import of {} MiB of Markdown); split the playlist or the batch into smaller ones",
            mib(MAX_BULK_BODY_BYTES),
            mib(MAX_IMPORT_BYTES)
        ),
    )
}

fn ok(value: impl serde::Serialize) -> Reply {
    Ok(Json(value).into_response())
}

async fn list(State(api): State<Arc<Api>>) -> Reply {
    let list = api.core().library().read(|store| Ok(store.list())).await?;
    Ok(Json(list).into_response())
}

async fn create(State(api): State<Arc<Api>>, Json(req): Json<CreatePlaylistRequest>) -> Reply {
    let id = api
        .core()
        .library()
        .write(move |store, me, now| {
            let id = store.create(&req.name, &req.description, me, now)?;
            Ok((id.clone(), Some(id)))
        })
        .await?;
    ok(CreatedReply { id })
}

async fn show(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Reply {
    let (playlist, guests) = api
        .core()
        .library()
        .read(move |store| Ok((store.get(&id)?, store.session_facts(&id)?.guests)))
        .await?;
    // Our own guests who are in count as online.
    let here: HashSet<String> = api
        .core()
        .guests()
        .list(&playlist.id, std::time::Instant::now())
        .map(|(guests, _)| guests.into_iter().map(|g| g.peer_id).collect())
        .unwrap_or_default();
    // Members: the owner and the collaborators, each with whether they are connected now.
    let state = api.core().state().snapshot();
    let session = state.sessions.iter().find(|s| s.id == playlist.id);
    let online: HashSet<&str> = session
        .map(|s| s.connected_members.iter().map(String::as_str).collect())
        .unwrap_or_default();
    // Any identity of ours (the main one, an isolated share's) is us, and online.
    let ours: HashSet<&str> = std::iter::once(state.peer_id.as_str())
        .chain(state.services.iter().map(|s| s.peer_id.as_str()))
        .collect();
    ok(PlaylistView::of(
        playlist,
        session.is_some(),
        |peer| ours.contains(peer) || online.contains(peer) || here.contains(peer),
        |peer| guests.contains_key(peer),
    ))
}

async fn share(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(req): Json<ShareRequest>,
) -> Reply {
    let check = id.clone();
    api.core()
        .library()
        .read(move |store| store.get(&check).map(|_| ()))
        .await?;
    let shared = api
        .core()
        .sessions()
        .share(&id, req.rotate, req.isolated)
        .await
        .map_err(|err| match err {
            ShareError::NotAllowed(why) => ApiError::new(StatusCode::FORBIDDEN, why),
            ShareError::Failed(err) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
            }
        })?;
    // The link names the identity that serves the playlist (an isolated one: its own).
    let link = invite_link(&shared.served_by, Some((id, shared.key)))
        .map_err(|message| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message))?;
    ok(LinkReply {
        link: link.to_string(),
    })
}

async fn revoke(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(req): Json<RevokeRequest>,
) -> Reply {
    api.core()
        .sessions()
        .revoke(&id, &req.peer_id)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    ok(OkReply::OK)
}

async fn remove_playlist(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Reply {
    api.core()
        .library()
        .write(move |store, _, now| store.delete(&id, now).map(|()| ((), Some(id))))
        .await?;
    ok(OkReply::OK)
}

async fn rename(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(req): Json<RenameRequest>,
) -> Reply {
    api.core()
        .library()
        .write(move |store, _, now| store.rename(&id, &req.name, now).map(|()| ((), Some(id))))
        .await?;
    ok(OkReply::OK)
}

async fn add(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    BulkJson(req): BulkJson<AddTracksRequest>,
) -> Reply {
    let (tracks, batch) = match req {
        AddTracksRequest::Batch { tracks } => (tracks, true),
        AddTracksRequest::One(track) => (vec![track], false),
    };
    // An isolated share's tracks carry its own identity, not the main one.
    let me = api.core().library().author_for(&id);
    let ids = api
        .core()
        .library()
        .write(move |store, _, now| {
            store
                .add_tracks(&id, &tracks, &me, now)
                .map(|ids| (ids, Some(id)))
        })
        .await?;
    if batch {
        ok(AddedTracks { track_ids: ids })
    } else {
        ok(AddedTrack {
            track_id: ids.into_iter().next(),
        })
    }
}

async fn move_track(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(req): Json<MoveRequest>,
) -> Reply {
    api.core()
        .library()
        .write(move |store, _, now| {
            store
                .move_track(&id, &req.track_id, req.to, now)
                .map(|()| ((), Some(id)))
        })
        .await?;
    ok(OkReply::OK)
}

async fn remove_track(
    State(api): State<Arc<Api>>,
    Path((id, track_id)): Path<(String, String)>,
) -> Reply {
    // Members remove their own tracks; the owner and co-hosts any (the store decides).
    let me = api.core().library().author_for(&id).peer_id;
    api.core()
        .library()
        .write(move |store, _, now| {
            store
                .remove_track(&id, &track_id, &me, now)
                .map(|()| ((), Some(id)))
        })
        .await?;
    ok(OkReply::OK)
}

async fn export(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Reply {
    let format = match query.format.as_deref() {
        None => formats::Format::Markdown,
        Some(name) => name
            .parse::<formats::Format>()
            .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, reason))?,
    };
    let text = api
        .core()
        .library()
        .read(move |store| formats::export(&store.get(&id)?, format))
        .await?;
    let content_type = match format {
        formats::Format::M3u => "audio/x-mpegurl; charset=utf-8",
        formats::Format::Xspf => "application/xspf+xml; charset=utf-8",
        _ => "text/markdown; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

async fn import(State(api): State<Arc<Api>>, BulkJson(req): BulkJson<ImportRequest>) -> Reply {
    if req.markdown.len() > MAX_IMPORT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the playlist to import is {} bytes of Markdown; the largest import accepted is {MAX_IMPORT_BYTES} bytes ({} MiB); split it into smaller playlists",
                req.markdown.len(),
                mib(MAX_IMPORT_BYTES)
            ),
        ));
    }
    let ImportRequest {
        markdown: text,
        as_new,
        name,
    } = req;
    let importer = api.core().library().author();
    // Parsing megabytes of YAML takes a while: off the async workers.
    let (format, playlist) = tokio::task::spawn_blocking(move || {
        formats::parse(
            &text,
            name.as_deref(),
            &importer,
            whatnext_core::state::now_ms(),
        )
    })
    .await
    .map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the playlist file failed: {err}"),
        )
    })??;
    let id = api
        .core()
        .library()
        .write(move |store, _, now| {
            // Only our own format carries an id; the others are new playlists.
            let as_new = as_new || format != formats::Format::Markdown;
            let id = store.import(&playlist, as_new, now)?;
            Ok((id.clone(), Some(id)))
        })
        .await?;
    ok(CreatedReply { id })
}
