//! The ids of a playlist's track list, kept in step with its document.
//!
//! The listing's track count leaves out tracks whose id was removed (a removed id hides its
//! track whatever the list says), and it is refreshed after every change. Reading every
//! id from Loro costs ~0.05 s at 10,000 tracks and ~0.7 s at 100,000, so once a playlist had
//! a removal every later edit paid that. Here the ids are read once, when first needed,
//! and then followed through Loro's events for the list: Loro emits every change of the
//! document's state (a local commit, an import, a checkout and back), each list change as
//! retains, deletes and inserts in list order.
//!
//! What an event cannot tell is marked and read again when next needed: a new element's id
//! (read then, from its container), an element whose `id` field changed (a map diff under
//! the list), and anything unexpected (then every id is read again).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use loro::{
    ContainerID, ContainerTrait as _, LoroDoc, LoroMovableList, Subscription, ValueOrContainer,
    event::{Diff, DiffEvent, ListDiffItem},
};

/// One element of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    /// The element's container, when it is a map (a track); other elements have no id.
    track: Option<ContainerID>,
    id: Option<String>,
    /// Its id is to be read again.
    unread: bool,
}

#[derive(Debug, Default)]
struct Mirror {
    /// The list's elements; None until first needed, and after an event not followed.
    slots: Option<Vec<Slot>>,
    /// Tracks whose `id` field changed since their slot was read.
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
                match &diff.diff {
                    // A track's fields: only its `id` matters here.
                    Diff::Map(delta) => {
                        if delta.updated.contains_key("id") {
                            self.changed.insert(diff.target.clone());
                        }
                        true
                    }
                    // A text can stand as an id (a modified client's); other containers
                    // under a track never read as one.
                    Diff::Text(_) => false,
                    _ => true,
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
                    let new = insert.iter().map(|item| match item {
                        ValueOrContainer::Container(container @ loro::Container::Map(_)) => Slot {
                            track: Some(container.id()),
                            id: None,
                            unread: true,
                        },
                        _ => Slot {
                            track: None,
                            id: None,
                            unread: false,
                        },
                    });
                    let count = insert.len();
                    slots.splice(at..at, new);
                    at += count;
                }
            }
        }
        at <= slots.len()
    }
}

/// The ids of a document's track list, in list order, kept in step with it once first
/// needed. (Following from the start would cost every load: Loro computes events only for
/// documents someone follows, and loading 100,000 tracks as one event took 6 s.)
#[derive(Default)]
pub(crate) struct TrackIds {
    mirror: Arc<Mutex<Mirror>>,
    following: OnceLock<Subscription>,
}

impl TrackIds {
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

    /// The ids of `list`'s elements (in `doc`'s current state), in list order, given to
    /// `with`. `read_all` reads every element's container and id (the first time);
    /// `read_id` reads one track's id (a new or changed one).
    pub(crate) fn with<T>(
        &self,
        doc: &LoroDoc,
        list: &LoroMovableList,
        read_all: impl FnOnce() -> Vec<(Option<ContainerID>, Option<String>)>,
        read_id: impl Fn(&loro::LoroMap) -> Option<String>,
        with: impl FnOnce(&mut dyn Iterator<Item = Option<&str>>) -> T,
    ) -> T {
        self.follow(doc, list);
        let mut mirror = self.mirror.lock().unwrap_or_else(PoisonError::into_inner);
        let Mirror { slots, changed } = &mut *mirror;
        let slots = slots.get_or_insert_with(|| {
            changed.clear();
            read_all()
                .into_iter()
                .map(|(track, id)| Slot {
                    track,
                    id,
                    unread: false,
                })
                .collect()
        });
        for slot in slots.iter_mut() {
            let Some(track) = &slot.track else { continue };
            if !(slot.unread || (!changed.is_empty() && changed.contains(track))) {
                continue;
            }
            slot.id = match doc.get_container(track.clone()) {
                Some(loro::Container::Map(map)) => read_id(&map),
                _ => None,
            };
            slot.unread = false;
        }
        changed.clear();
        with(&mut slots.iter().map(|slot| slot.id.as_deref()))
    }
}
