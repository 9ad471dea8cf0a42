//! What the shim knows about its containers and their processes, exits, and the events it
//! publishes to containerd.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use containerd_shim::protos::events::task::{TaskExit, TaskOOM};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::topics;

use crate::events::{pack, Publisher};

use crate::worker::{Pending, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// The init or an exec'd process.
pub struct Proc {
    pub pid: i32,
    pub stdio: Stdio,
    pub status: Status,
    pub exit: Option<(i32, SystemTime)>,
    /// A terminal's master (ResizePty); the copy threads hold their own clones.
    pub master: Option<Arc<File>>,
    /// Runtime-spec process JSON of an exec, written at Exec, run at Start.
    pub process_file: Option<PathBuf>,
}

impl Proc {
    pub fn new(stdio: Stdio) -> Proc {
        Proc {
            pid: 0,
            stdio,
            status: Status::Created,
            exit: None,
            master: None,
            process_file: None,
        }
    }
}

pub struct Container {
    pub bundle: PathBuf,
    /// sealrun's state root for this container (`<Root>/<namespace>`).
    pub root: PathBuf,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
    /// The memory cgroup file that counts OOM kills, and the count at create.
    pub oom: Option<(PathBuf, u64)>,
    /// A TaskOOM was published for this container.
    pub oom_reported: bool,
}

pub struct Shared {
    pub containers: Mutex<HashMap<String, Container>>,
    pub changed: Condvar,
    pending: Mutex<Pending>,
    /// Held while a process starts, so its exit is published after its start.
    pub starting: Mutex<()>,
    pub publisher: Publisher,
    pub namespace: String,
    /// OOM notifiers for the main loop (see `oom`).
    pub oom: crate::oom::Watches,
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

impl Shared {
    pub fn new(publisher: Publisher, namespace: String) -> Result<Shared, String> {
        Ok(Shared {
            containers: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            pending: Mutex::new(Pending::new()),
            starting: Mutex::new(()),
            publisher,
            namespace,
            oom: crate::oom::Watches::new().map_err(|e| format!("eventfd: {e}"))?,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publish(&self, topic: &str, event: Any) {
        self.publisher.publish(topic, event);
    }

    /// `pid`, a child of the shim, exited (see `serve`).
    pub fn on_exit(&self, pid: i32, status: i32) {
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        // Stamped once any start in progress is over: an exit is never dated before its start.
        let when = SystemTime::now();
        let mut events: Vec<(&str, Any)> = Vec::new();
        {
            let mut all = self.lock();
            let mut found = false;
            for (id, c) in all.iter_mut() {
                if c.init.pid == pid && c.init.exit.is_none() {
                    found = true;
                    if let Some((file, before)) = &c.oom {
                        // Unless the OOM notifier (see `oom`) has reported one already.
                        if oom_kills(file) > *before && !c.oom_reported {
                            c.oom_reported = true;
                            events.push((
                                topics::TASK_OOM_EVENT_TOPIC,
                                pack(&TaskOOM {
                                    container_id: id.clone(),
                                    ..Default::default()
                                }),
                            ));
                        }
                    }
                    mark_exit(&mut c.init, status, when);
                    events.push(exit_event(id, id, pid, status, when));
                    break;
                }
                if let Some((eid, p)) = c
                    .execs
                    .iter_mut()
                    .find(|(_, p)| p.pid == pid && p.exit.is_none())
                {
                    found = true;
                    mark_exit(p, status, when);
                    events.push(exit_event(id, eid, pid, status, when));
                    break;
                }
            }
            if !found {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                crate::worker::hold_exit(&mut pending, pid, status, when);
            }
        }
        self.changed.notify_all();
        for (topic, ev) in events {
            self.publish(topic, ev);
        }
    }

    /// An exit reaped before the shim learnt the pid.
    pub fn take_pending(&self, pid: i32) -> Option<(i32, SystemTime)> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid)
    }
}

fn mark_exit(p: &mut Proc, status: i32, when: SystemTime) {
    p.exit = Some((status, when));
    p.status = Status::Stopped;
}

fn exit_event(cid: &str, id: &str, pid: i32, status: i32, when: SystemTime) -> (&'static str, Any) {
    (
        topics::TASK_EXIT_EVENT_TOPIC,
        pack(&TaskExit {
            container_id: cid.to_string(),
            id: id.to_string(),
            pid: pid as u32,
            exit_status: status as u32,
            exited_at: Some(timestamp(when)).into(),
            ..Default::default()
        }),
    )
}

/// The `oom_kill` count of a memory cgroup (v1 `memory.oom_control`, v2 `memory.events`).
pub fn oom_kills(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The file counting OOM kills in the memory cgroup of `pid`.
pub fn oom_file(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
        if ctl.split(',').any(|c| c == "memory") {
            let p = Path::new("/sys/fs/cgroup/memory")
                .join(path.trim_start_matches('/'))
                .join("memory.oom_control");
            if p.exists() {
                return Some(p);
            }
        }
    }
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let base = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/unified")
    };
    let p = base.join(v2.trim_start_matches('/')).join("memory.events");
    p.exists().then_some(p)
}
