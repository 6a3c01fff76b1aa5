//! What every route and the single-instance socket are given: the core, and the API's own
//! access secrets.

use std::sync::Arc;

use whatnext_core::Core;

use crate::access::Access;

/// The state of the router and of the single-instance socket.
pub struct Api {
    core: Arc<Core>,
    access: Access,
}

impl Api {
    pub fn new(core: Arc<Core>, access: Access) -> Self {
        Self { core, access }
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn access(&self) -> &Access {
        &self.access
    }
}
