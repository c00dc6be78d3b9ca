//! The effect handlers this server runs. A job is queued for each handler that wants an event
//! when the event is recorded, so adding a handler here affects events recorded from then on.

use std::sync::Arc;

use super::{EffectHandler, Handlers};

/// Every handler of the server, in no particular order (jobs run independently).
pub fn all() -> Handlers {
    let list: Vec<Arc<dyn EffectHandler>> = vec![
        Arc::new(crate::webhooks::WebhooksHandler),
        Arc::new(crate::notifications::NotificationsHandler),
    ];
    Handlers::new(list)
}
