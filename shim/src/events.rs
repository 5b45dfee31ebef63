//! Task events back to containerd, the way containerd 1.6+ shims publish them: a ttrpc
//! call `containerd.services.events.ttrpc.v1.Events/Forward` on containerd's ttrpc socket
//! (the `TTRPC_ADDRESS` environment variable containerd gives its shims, else
//! `<-address>.ttrpc`), each event an `Envelope` with the namespace, topic and the event
//! as an `Any` whose type URL is the bare proto name (`containerd.events.TaskExit`),
//! as containerd's typeurl registry expects. (`-publish-binary` / `containerd publish`
//! is the older path; containerd 1.6 serves the ttrpc one.)
//!
//! One thread sends the queue in order, reconnecting and retrying (containerd may be
//! restarting); the connection is dropped when the queue has been idle for a few
//! seconds, so an idle shim holds no client threads, and the idle shim's clean file pages
//! are released then ([`crate::trim`]). Without an address (tests) events
//! are logged to stderr.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::topics;

/// A task event.
#[derive(Debug)]
pub enum Event {
    /// `/tasks/create`.
    Create(TaskCreate),
    /// `/tasks/start`.
    Start(TaskStart),
    /// `/tasks/exit`.
    Exit(TaskExit),
    /// `/tasks/delete`.
    Delete(TaskDelete),
    /// `/tasks/exec-added`.
    ExecAdded(TaskExecAdded),
    /// `/tasks/exec-started`.
    ExecStarted(TaskExecStarted),
    /// `/tasks/paused`.
    Paused(TaskPaused),
    /// `/tasks/resumed`.
    Resumed(TaskResumed),
    /// `/tasks/oom`.
    Oom(TaskOOM),
}

fn pack<M: Message>(m: &M) -> Any {
    Any {
        type_url: format!("containerd.events.{}", M::NAME),
        value: m.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

impl Event {
    fn topic_and_any(&self) -> (&'static str, Any) {
        match self {
            Event::Create(e) => (topics::TASK_CREATE_EVENT_TOPIC, pack(e)),
            Event::Start(e) => (topics::TASK_START_EVENT_TOPIC, pack(e)),
            Event::Exit(e) => (topics::TASK_EXIT_EVENT_TOPIC, pack(e)),
            Event::Delete(e) => (topics::TASK_DELETE_EVENT_TOPIC, pack(e)),
            Event::ExecAdded(e) => (topics::TASK_EXEC_ADDED_EVENT_TOPIC, pack(e)),
            Event::ExecStarted(e) => (topics::TASK_EXEC_STARTED_EVENT_TOPIC, pack(e)),
            Event::Paused(e) => (topics::TASK_PAUSED_EVENT_TOPIC, pack(e)),
            Event::Resumed(e) => (topics::TASK_RESUMED_EVENT_TOPIC, pack(e)),
            Event::Oom(e) => (topics::TASK_OOM_EVENT_TOPIC, pack(e)),
        }
    }
}

/// A protobuf timestamp.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

/// The publisher (see the module doc).
#[derive(Clone)]
pub struct Publisher {
    tx: Sender<(Event, SystemTime)>,
}

impl Publisher {
    /// Starts the sender thread.
    pub fn new(ttrpc_address: Option<String>, namespace: String) -> Publisher {
        let (tx, rx) = channel();
        let _ = std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 * 1024)
            .spawn(move || run(rx, ttrpc_address, namespace));
        Publisher { tx }
    }

    /// Queues an event.
    pub fn publish(&self, e: Event) {
        let _ = self.tx.send((e, SystemTime::now()));
    }
}

fn run(rx: Receiver<(Event, SystemTime)>, address: Option<String>, namespace: String) {
    use containerd_shim_protos::shim::events_ttrpc::EventsClient;
    let mut client: Option<EventsClient> = None;
    // Trim once shortly after start-up, then after every quiet period following activity
    // (every state change publishes an event, so the queue's silence means idle).
    let mut trim_due = true;
    loop {
        let wait = if trim_due {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(3600)
        };
        let (event, when) = match rx.recv_timeout(wait) {
            Ok(x) => x,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                client = None;
                if trim_due {
                    crate::trim::release_clean_file_pages();
                    trim_due = false;
                }
                continue;
            }
            Err(_) => return,
        };
        trim_due = true;
        let (topic, any) = event.topic_and_any();
        let Some(addr) = &address else {
            eprintln!("shim: event {topic} {event:?}");
            continue;
        };
        let req = ForwardRequest {
            envelope: MessageField::some(Envelope {
                timestamp: MessageField::some(timestamp(when)),
                namespace: namespace.clone(),
                topic: topic.to_string(),
                event: MessageField::some(any),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut delay = Duration::from_millis(100);
        for attempt in 0..8 {
            if client.is_none() {
                let a = if addr.starts_with("unix://") {
                    addr.clone()
                } else {
                    format!("unix://{addr}")
                };
                client = containerd_shim_protos::ttrpc::Client::connect(&a)
                    .ok()
                    .map(EventsClient::new);
            }
            if let Some(c) = &client {
                let ctx = containerd_shim_protos::ttrpc::context::with_timeout(
                    Duration::from_secs(5).as_nanos() as i64,
                );
                match c.forward(ctx, &req) {
                    Ok(_) => break,
                    Err(e) => {
                        eprintln!("shim: publishing {topic} (attempt {attempt}): {e:?}");
                        client = None;
                    }
                }
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}
