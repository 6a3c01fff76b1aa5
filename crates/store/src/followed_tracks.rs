//! A playlist's track list as last read, kept in step with its document.
//!
//! The listing's track count leaves out tracks whose id was removed, and it is refreshed
//! after every change; a read of the whole playlist follows every change the view, a
//! session action or a vote sees. Reading every id from Loro costs ~0.05 s at 10,000
//! tracks and ~0.7 s at 100,000; reading every track ~0.08 s and ~1.4 s. So each element
//! is read when first needed and then followed through Loro's events for the list: Loro
//! emits every change of the document's state (a local commit, an import, a checkout and
//! back), each list change as retains, deletes and inserts in list order, and each change
//! inside a track with its path through the list. Only new and changed tracks are read
//! again; anything an event cannot place makes every element be read again.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use loro::{
    ContainerID, ContainerTrait as _, LoroDoc, LoroMovableList, Subscription, ValueOrContainer,
    event::{Diff, DiffEvent, ListDiffItem},
};

use crate::kept_track::KeptTrack;

/// One element of the list, as last read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slot {
    /// The element's container, when it is a map (a track); other elements have no id.
    pub track: Option<ContainerID>,
    /// Its id (see `doc::field_text`), unless `stale`.
    pub id: Option<String>,
    /// Its id is to be read again.
    pub stale: bool,
    /// The whole track; None until read, and again whenever it changes. (Kept in one
    /// allocation: see [`KeptTrack`]. The count scans every slot after each change, so a
    /// slot's size is also that scan's cost.)
    pub read: Option<KeptTrack>,
}

/// The container of a list element that is a track map; None for any other element.
pub(crate) fn track_map(item: &ValueOrContainer) -> Option<ContainerID> {
    match item {
        ValueOrContainer::Container(container @ loro::Container::Map(_)) => Some(container.id()),
        _ => None,
    }
}

impl Slot {
    /// An element not read yet.
    pub fn unread(track: Option<ContainerID>) -> Self {
        Slot {
            stale: track.is_some(),
            track,
            id: None,
            read: None,
        }
    }
}

#[derive(Debug, Default)]
struct Mirror {
    /// The list's elements; None until first needed, and after an event not followed.
    slots: Option<Vec<Slot>>,
    /// Tracks that changed (a field, or a container under one) since their slot was read.
    changed: HashSet<ContainerID>,
}

impl Mirror {
    fn follow(&mut self, event: &DiffEvent, list: &ContainerID) {
        if self.slots.is_none() {
            return;
        }
        for diff in &event.events {
            let followed = if diff.target == list {
                match &diff.diff {
                    Diff::List(items) if !diff.is_unknown => self.apply(items),
                    _ => false,
                }
            } else {
                // Under the list: the path from the list down names the track it is in.
                match diff.path {
                    [(root, _), (track, _), ..] if root == list => {
                        self.changed.insert(track.clone());
                        true
                    }
                    _ => false,
                }
            };
            if !followed {
                self.slots = None;
                self.changed.clear();
                return;
            }
        }
    }

    /// Applies a list diff; false when it does not fit the list as mirrored.
    fn apply(&mut self, items: &[ListDiffItem]) -> bool {
        let Some(slots) = self.slots.as_mut() else {
            return false;
        };
        let mut at = 0usize;
        for item in items {
            match item {
                ListDiffItem::Retain { retain } => at += retain,
                ListDiffItem::Delete { delete } => {
                    let Some(end) = at.checked_add(*delete).filter(|end| *end <= slots.len())
                    else {
                        return false;
                    };
                    slots.drain(at..end);
                }
                ListDiffItem::Insert { insert, .. } => {
                    if at > slots.len() {
                        return false;
                    }
                    let new = insert.iter().map(|item| Slot::unread(track_map(item)));
                    let count = insert.len();
                    slots.splice(at..at, new);
                    at += count;
                }
            }
        }
        at <= slots.len()
    }
}

/// A document's track list as last read, in list order, kept in step with it once first
/// needed. (Following from the start would cost every load: Loro computes events only for
/// documents someone follows, and loading 100,000 tracks as one event took 6 s.)
#[derive(Default)]
pub(crate) struct FollowedTracks {
    mirror: Arc<Mutex<Mirror>>,
    following: OnceLock<Subscription>,
}

impl FollowedTracks {
    fn follow(&self, doc: &LoroDoc, list: &LoroMovableList) {
        self.following.get_or_init(|| {
            let target = list.id();
            let followed = Arc::clone(&self.mirror);
            doc.subscribe(
                &list.id(),
                Arc::new(move |event| {
                    followed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .follow(&event, &target);
                }),
            )
        });
    }

    /// Starts following `list` from `slots`: its elements as they are in `doc`'s current
    /// state (read elsewhere, e.g. from the listing's cache of this very version).
    pub(crate) fn start_from(&self, doc: &LoroDoc, list: &LoroMovableList, slots: Vec<Slot>) {
        self.follow(doc, list);
        let mut mirror = self.mirror.lock().unwrap_or_else(PoisonError::into_inner);
        mirror.slots = Some(slots);
        mirror.changed.clear();
    }

    /// The tracks as last read that have not changed since, by container, taken out (what
    /// is left follows from scratch). Any other version of the document that holds these
    /// containers holds them as they are here: a container's content is its ops, and these
    /// saw none since they were read.
    pub(crate) fn take_unchanged(&self) -> std::collections::HashMap<ContainerID, Slot> {
        let mut mirror = self.mirror.lock().unwrap_or_else(PoisonError::into_inner);
        let Mirror { slots, changed } = &mut *mirror;
        let unchanged = slots
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|slot| {
                let track = slot.track.clone()?;
                (!slot.stale && slot.read.is_some() && !changed.contains(&track))
                    .then_some((track, slot))
            })
            .collect();
        changed.clear();
        unchanged
    }

    /// The elements of `list` (in `doc`'s current state), in list order, given to `with`:
    /// as last read, with every element that changed since marked (`stale`, `read` None).
    /// `fresh` lists the elements, unread, when there is nothing to follow from. What is
    /// read in `with` is kept for next time.
    pub(crate) fn with<T>(
        &self,
        doc: &LoroDoc,
        list: &LoroMovableList,
        fresh: impl FnOnce() -> Vec<Slot>,
        with: impl FnOnce(&mut [Slot]) -> T,
    ) -> T {
        self.follow(doc, list);
        let mut mirror = self.mirror.lock().unwrap_or_else(PoisonError::into_inner);
        let Mirror { slots, changed } = &mut *mirror;
        let slots = slots.get_or_insert_with(|| {
            changed.clear();
            fresh()
        });
        if !changed.is_empty() {
            for slot in slots.iter_mut() {
                if slot
                    .track
                    .as_ref()
                    .is_some_and(|track| changed.contains(track))
                {
                    slot.stale = true;
                    slot.read = None;
                }
            }
            changed.clear();
        }
        with(slots)
    }
}
