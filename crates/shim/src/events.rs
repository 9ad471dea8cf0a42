//! Events to containerd (its `containerd.services.events.ttrpc.v1.Events/Forward`), packed into
//! `Any` by their protobuf names.
//!
//! The shim crate's `RemotePublisher` names an event through protobuf's reflection, which
//! builds the descriptors of every file the event's file imports on the first event and keeps
//! them in the heap for the shim's lifetime: more heap than all else the shim keeps. The names
//! are fixed, so they are written here (a test checks them against the descriptors).

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::events::{Envelope, ForwardRequest};
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::{Client, EventsClient};

use crate::state::timestamp;

/// An event of containerd's `containerd.events` package, which containerd decodes by its
/// message name.
pub trait Event: Message {}

/// The events' protobuf package.
const PACKAGE: &str = "containerd.events";

macro_rules! events {
    ($($t:ident),*) => {$(
        impl Event for $t {}
    )*};
}

events!(
    TaskCreate,
    TaskStart,
    TaskExit,
    TaskOOM,
    TaskDelete,
    TaskPaused,
    TaskResumed,
    TaskExecAdded,
    TaskExecStarted
);

/// `event` in an `Any`, as containerd's own shims pack it (the bare message name as type URL).
pub fn pack<E: Event>(event: &E) -> Any {
    Any {
        type_url: format!("{PACKAGE}.{}", <E as Message>::NAME),
        // Every field of these messages is optional: encoding cannot fail.
        value: event.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

/// The connection to containerd's event service.
pub struct Publisher {
    client: EventsClient,
    namespace: String,
}

impl Publisher {
    /// Connects to containerd's ttrpc socket (`TTRPC_ADDRESS`, which the shim crate checked).
    pub fn connect(namespace: String) -> Result<Publisher, String> {
        let address = std::env::var("TTRPC_ADDRESS").map_err(|e| format!("TTRPC_ADDRESS: {e}"))?;
        let fd = containerd_shim::util::connect(&address).map_err(|e| format!("{address}: {e}"))?;
        let client = Client::new(fd).map_err(|e| format!("{address}: {e}"))?;
        Ok(Publisher {
            client: EventsClient::new(client),
            namespace,
        })
    }

    pub fn publish(&self, topic: &str, event: Any) {
        let req = ForwardRequest {
            envelope: Some(Envelope {
                timestamp: Some(timestamp(std::time::SystemTime::now())).into(),
                namespace: self.namespace.clone(),
                topic: topic.to_string(),
                event: Some(event).into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        if let Err(e) = self.client.forward(Context::default(), &req) {
            log::warn!("publish {topic}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::protobuf::MessageFull;

    fn check<E: Event + MessageFull + Default>() {
        assert_eq!(pack(&E::default()).type_url, E::descriptor().full_name());
    }

    /// The written names are protobuf's (reflection is fine in a test).
    #[test]
    fn names_match_the_descriptors() {
        check::<TaskCreate>();
        check::<TaskStart>();
        check::<TaskExit>();
        check::<TaskOOM>();
        check::<TaskDelete>();
        check::<TaskPaused>();
        check::<TaskResumed>();
        check::<TaskExecAdded>();
        check::<TaskExecStarted>();
    }

    #[test]
    fn packed_event_decodes() {
        let e = TaskExit {
            container_id: "c".into(),
            exit_status: 3,
            ..Default::default()
        };
        let any = pack(&e);
        assert_eq!(any.type_url, "containerd.events.TaskExit");
        let back = TaskExit::parse_from_bytes(&any.value).expect("decode");
        assert_eq!(back, e);
    }
}
