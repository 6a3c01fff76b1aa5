//! HTTP routes for playlists. Every route goes through the [`Library`], so the controller
//! stays the store's only writer and every change bumps the state version.
//!
//! [`Library`]: crate::library::Library

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use whatnext_protocol::api::{
    AddTracksRequest, AddedTrack, AddedTracks, CreatePlaylistRequest, CreatedReply, ImportRequest,
    LinkReply, Member, MoveRequest, OkReply, PlaylistView, RenameRequest, RevokeRequest,
    ShareRequest,
};
use whatnext_store::{StoreError, markdown};

use crate::{api::ApiError, app::App};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/playlists", get(list).post(create))
        .route("/api/playlists/import", post(import))
        .route("/api/playlists/{id}", get(show).delete(remove_playlist))
        .route("/api/playlists/{id}/rename", post(rename))
        .route("/api/playlists/{id}/tracks", post(add))
        .route("/api/playlists/{id}/move", post(move_track))
        .route(
            "/api/playlists/{id}/tracks/{track_id}",
            delete(remove_track),
        )
        .route("/api/playlists/{id}/export", get(export))
        .route("/api/playlists/{id}/share", post(share))
        .route("/api/playlists/{id}/revoke", post(revoke))
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
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

type Reply = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> Reply {
    Ok(Json(value).into_response())
}

async fn list(State(app): State<Arc<App>>) -> Reply {
    let list = app.library.read(|store| Ok(store.list())).await?;
    Ok(Json(list).into_response())
}

async fn create(State(app): State<Arc<App>>, Json(req): Json<CreatePlaylistRequest>) -> Reply {
    let id = app
        .library
        .write(move |store, me, now| {
            let id = store.create(&req.name, &req.description, me, now)?;
            Ok((id.clone(), Some(id)))
        })
        .await?;
    ok(CreatedReply { id })
}

async fn show(State(app): State<Arc<App>>, Path(id): Path<String>) -> Reply {
    let playlist = app.library.read(move |store| store.get(&id)).await?;
    // Members: the owner and the collaborators, each with whether they are connected now.
    let online = app.sessions.online(&playlist.id);
    let me = app.state.snapshot().peer_id;
    let members: Vec<Member> = std::iter::once(&playlist.owner)
        .chain(
            playlist
                .collaborators
                .iter()
                .filter(|c| c.peer_id != playlist.owner.peer_id),
        )
        .map(|m| Member {
            peer_id: m.peer_id.clone(),
            display_name: m.display_name.clone(),
            online: m.peer_id == me || online.contains(&m.peer_id),
            owner: m.peer_id == playlist.owner.peer_id,
        })
        .collect();
    let shared = app.sessions.entry(&playlist.id).is_some();
    ok(PlaylistView {
        playlist,
        members,
        shared,
    })
}

async fn share(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<ShareRequest>,
) -> Reply {
    let check = id.clone();
    app.library
        .read(move |store| store.get(&check).map(|_| ()))
        .await?;
    let key = app
        .sessions
        .share(&id, req.rotate)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    let link = app
        .invite_to(Some((id, key)))
        .map_err(|message| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message))?;
    ok(LinkReply {
        link: link.to_string(),
    })
}

async fn revoke(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<RevokeRequest>,
) -> Reply {
    app.sessions
        .revoke(&id, &req.peer_id)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    ok(OkReply::OK)
}

async fn remove_playlist(State(app): State<Arc<App>>, Path(id): Path<String>) -> Reply {
    app.library
        .write(move |store, _, now| store.delete(&id, now).map(|()| ((), Some(id))))
        .await?;
    ok(OkReply::OK)
}

async fn rename(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<RenameRequest>,
) -> Reply {
    app.library
        .write(move |store, _, now| store.rename(&id, &req.name, now).map(|()| ((), Some(id))))
        .await?;
    ok(OkReply::OK)
}

async fn add(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<AddTracksRequest>,
) -> Reply {
    let (tracks, batch) = match req {
        AddTracksRequest::Batch { tracks } => (tracks, true),
        AddTracksRequest::One(track) => (vec![track], false),
    };
    let ids = app
        .library
        .write(move |store, me, now| {
            store
                .add_tracks(&id, &tracks, me, now)
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
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<MoveRequest>,
) -> Reply {
    app.library
        .write(move |store, _, now| {
            store
                .move_track(&id, &req.track_id, req.to, now)
                .map(|()| ((), Some(id)))
        })
        .await?;
    ok(OkReply::OK)
}

async fn remove_track(
    State(app): State<Arc<App>>,
    Path((id, track_id)): Path<(String, String)>,
) -> Reply {
    app.library
        .write(move |store, _, now| {
            store
                .remove_track(&id, &track_id, now)
                .map(|()| ((), Some(id)))
        })
        .await?;
    ok(OkReply::OK)
}

async fn export(State(app): State<Arc<App>>, Path(id): Path<String>) -> Reply {
    let text = app
        .library
        .read(move |store| markdown::to_markdown(&store.get(&id)?))
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        text,
    )
        .into_response())
}

async fn import(State(app): State<Arc<App>>, Json(req): Json<ImportRequest>) -> Reply {
    let playlist = markdown::from_markdown(&req.markdown)?;
    let id = app
        .library
        .write(move |store, _, now| {
            let id = store.import(&playlist, req.as_new, now)?;
            Ok((id.clone(), Some(id)))
        })
        .await?;
    ok(CreatedReply { id })
}
