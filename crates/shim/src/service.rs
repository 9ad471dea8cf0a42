//! containerd's task service (shim v2, `containerd.task.v2.Task`) over the sealrun library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim::api::{self, Empty, Status as ApiStatus};
use containerd_shim::protos::api::ProcessInfo;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskIO, TaskPaused, TaskResumed,
    TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::{get_status, Code};
use containerd_shim::{Task, TtrpcContext, TtrpcResult};
use nix::sys::eventfd::EventFd;

use crate::bundle::{mount_rootfs, runtime_root, unmount_rootfs, ROOT_FILE};
use crate::io;
use crate::state::{oom_file, oom_kills, timestamp, Container, Proc, Shared, Status};
use crate::worker::{Request, Stdio, Worker};

pub struct Service {
    pub shared: Arc<Shared>,
    pub worker: Arc<Worker>,
    /// Written at Shutdown: the main loop ends (see `serve`).
    pub exit: Arc<EventFd>,
}

fn err(code: Code, msg: impl ToString) -> containerd_shim::protos::ttrpc::Error {
    containerd_shim::protos::ttrpc::Error::RpcStatus(get_status(code, msg))
}

pub fn internal(msg: impl ToString) -> containerd_shim::protos::ttrpc::Error {
    err(Code::INTERNAL, msg)
}

fn not_found(what: &str) -> containerd_shim::protos::ttrpc::Error {
    err(Code::NOT_FOUND, format!("{what}: not found"))
}

impl Service {
    fn call(&self, req: &Request) -> TtrpcResult<(i32, serde_json::Value, Option<std::fs::File>)> {
        self.worker
            .call(req)
            .map(|(pid, v, fd)| (pid, v, fd.map(std::fs::File::from)))
            .map_err(internal)
    }

    fn root_of(&self, id: &str) -> TtrpcResult<PathBuf> {
        self.shared
            .lock()
            .get(id)
            .map(|c| c.root.clone())
            .ok_or_else(|| not_found(id))
    }

    fn init_pid(&self, id: &str) -> TtrpcResult<i32> {
        self.shared
            .lock()
            .get(id)
            .map(|c| c.init.pid)
            .ok_or_else(|| not_found(id))
    }
}

impl Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(err(
                Code::UNIMPLEMENTED,
                "restore from a checkpoint: not implemented by sealrun",
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        let root = runtime_root(req.options.as_ref(), &self.shared.namespace);
        let _ = std::fs::write(bundle.join(ROOT_FILE), root.as_os_str().as_encoded_bytes());
        mount_rootfs(&bundle, &req.rootfs)?;
        let stdio = Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let created = self.call(&Request::Create {
            root: root.clone(),
            id: req.id.clone(),
            bundle: bundle.clone(),
            stdio: stdio.clone(),
        });
        let (pid, _, master) = match created {
            Ok(v) => v,
            Err(e) => {
                unmount_rootfs(&bundle);
                return Err(e);
            }
        };
        let mut init = Proc::new(stdio.clone());
        init.pid = pid;
        if let Some(m) = master {
            let m = Arc::new(m);
            io::copy_terminal(Arc::clone(&m), &stdio.stdin, &stdio.stdout);
            init.master = Some(m);
        }
        let oom = oom_file(pid).map(|f| {
            let n = oom_kills(&f);
            (f, n)
        });
        self.shared.lock().insert(
            req.id.clone(),
            Container {
                bundle: bundle.clone(),
                root,
                init,
                execs: Default::default(),
                oom: oom.clone(),
                oom_reported: false,
            },
        );
        if let Some((file, _)) = oom {
            crate::oom::watch(&self.shared, &req.id, file);
        }
        self.shared.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            crate::events::pack(&TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                pid: pid as u32,
                ..Default::default()
            }),
        );
        if let Some((status, _)) = self.shared.take_pending(pid) {
            self.shared.on_exit(pid, status);
        }
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        let root = self.root_of(&req.id)?;
        let _starting = self
            .shared
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if req.exec_id.is_empty() {
            self.call(&Request::Start {
                root,
                id: req.id.clone(),
            })?;
            let pid = {
                let mut all = self.shared.lock();
                let c = all.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
                if c.init.exit.is_none() {
                    c.init.status = Status::Running;
                }
                c.init.pid
            };
            self.shared.publish(
                topics::TASK_START_EVENT_TOPIC,
                crate::events::pack(&TaskStart {
                    container_id: req.id.clone(),
                    pid: pid as u32,
                    ..Default::default()
                }),
            );
            return Ok(api::StartResponse {
                pid: pid as u32,
                ..Default::default()
            });
        }
        let (process, stdio) = {
            let all = self.shared.lock();
            let p = all
                .get(&req.id)
                .and_then(|c| c.execs.get(&req.exec_id))
                .ok_or_else(|| not_found(&req.exec_id))?;
            (p.process_file.clone().unwrap_or_default(), p.stdio.clone())
        };
        let (pid, _, master) = self.call(&Request::Exec {
            root,
            id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            process,
            stdio: stdio.clone(),
        })?;
        {
            let mut all = self.shared.lock();
            if let Some(p) = all
                .get_mut(&req.id)
                .and_then(|c| c.execs.get_mut(&req.exec_id))
            {
                p.pid = pid;
                p.status = Status::Running;
                if let Some(m) = master {
                    let m = Arc::new(m);
                    io::copy_terminal(Arc::clone(&m), &stdio.stdin, &stdio.stdout);
                    p.master = Some(m);
                }
            }
        }
        self.shared.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            crate::events::pack(&TaskExecStarted {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                pid: pid as u32,
                ..Default::default()
            }),
        );
        drop(_starting);
        if let Some((status, _)) = self.shared.take_pending(pid) {
            self.shared.on_exit(pid, status);
        }
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<Empty> {
        let bundle = {
            let all = self.shared.lock();
            let c = all.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            if c.execs.contains_key(&req.exec_id) {
                return Err(err(
                    Code::ALREADY_EXISTS,
                    format!("exec {}: already exists", req.exec_id),
                ));
            }
            c.bundle.clone()
        };
        let spec = req
            .spec
            .as_ref()
            .ok_or_else(|| err(Code::INVALID_ARGUMENT, "exec: no process spec"))?;
        let file = bundle.join(format!("exec-{}.json", req.exec_id));
        std::fs::write(&file, &spec.value)
            .map_err(|e| internal(format!("{}: {e}", file.display())))?;
        let mut p = Proc::new(Stdio {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        });
        p.process_file = Some(file);
        if let Some(c) = self.shared.lock().get_mut(&req.id) {
            c.execs.insert(req.exec_id.clone(), p);
        }
        self.shared.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            crate::events::pack(&TaskExecAdded {
                container_id: req.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            }),
        );
        Ok(Empty::new())
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<Empty> {
        let (root, pid, exited) = {
            let all = self.shared.lock();
            let c = all.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            let p = if req.exec_id.is_empty() {
                &c.init
            } else {
                c.execs
                    .get(&req.exec_id)
                    .ok_or_else(|| not_found(&req.exec_id))?
            };
            (c.root.clone(), p.pid, p.exit.is_some())
        };
        if exited && !req.all {
            return Err(err(Code::NOT_FOUND, "process already finished"));
        }
        if !req.exec_id.is_empty() {
            let sig = nix::sys::signal::Signal::try_from(req.signal as i32)
                .map_err(|_| err(Code::INVALID_ARGUMENT, format!("signal {}", req.signal)))?;
            if pid <= 0 {
                return Err(err(Code::FAILED_PRECONDITION, "process not started"));
            }
            return sealrun::worker::kill(nix::unistd::Pid::from_raw(pid), Some(sig))
                .map(|_| Empty::new())
                .map_err(|e| internal(format!("kill {pid}: {e}")));
        }
        match self.call(&Request::Kill {
            root,
            id: req.id.clone(),
            signal: req.signal as i32,
            all: req.all,
        }) {
            Ok(_) => Ok(Empty::new()),
            // The init exited between our check and the call.
            Err(_)
                if self
                    .shared
                    .lock()
                    .get(&req.id)
                    .is_some_and(|c| c.init.exit.is_some()) =>
            {
                Err(err(Code::NOT_FOUND, "process already finished"))
            }
            Err(e) => Err(e),
        }
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            let p = {
                let mut all = self.shared.lock();
                let c = all.get_mut(&req.id).ok_or_else(|| not_found(&req.id))?;
                c.execs
                    .remove(&req.exec_id)
                    .ok_or_else(|| not_found(&req.exec_id))?
            };
            if let Some(f) = &p.process_file {
                let _ = std::fs::remove_file(f);
            }
            let (status, when) = p.exit.unwrap_or((0, SystemTime::now()));
            return Ok(api::DeleteResponse {
                pid: p.pid as u32,
                exit_status: status as u32,
                exited_at: Some(timestamp(when)).into(),
                ..Default::default()
            });
        }
        let (root, bundle, pid, exit) = {
            let all = self.shared.lock();
            let c = all.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            (c.root.clone(), c.bundle.clone(), c.init.pid, c.init.exit)
        };
        self.call(&Request::Delete {
            root,
            id: req.id.clone(),
            force: exit.is_none(),
        })?;
        unmount_rootfs(&bundle);
        self.shared.lock().remove(&req.id);
        crate::oom::forget(&req.id);
        let (status, when) = exit.unwrap_or((128 + 9, SystemTime::now()));
        self.shared.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            crate::events::pack(&TaskDelete {
                container_id: req.id.clone(),
                pid: pid as u32,
                exit_status: status as u32,
                exited_at: Some(timestamp(when)).into(),
                ..Default::default()
            }),
        );
        Ok(api::DeleteResponse {
            pid: pid as u32,
            exit_status: status as u32,
            exited_at: Some(timestamp(when)).into(),
            ..Default::default()
        })
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let mut all = self.shared.lock();
        loop {
            let c = all.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            let p = if req.exec_id.is_empty() {
                &c.init
            } else {
                c.execs
                    .get(&req.exec_id)
                    .ok_or_else(|| not_found(&req.exec_id))?
            };
            if let Some((status, when)) = p.exit {
                return Ok(api::WaitResponse {
                    exit_status: status as u32,
                    exited_at: Some(timestamp(when)).into(),
                    ..Default::default()
                });
            }
            all = self
                .shared
                .changed
                .wait(all)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let all = self.shared.lock();
        let c = all.get(&req.id).ok_or_else(|| not_found(&req.id))?;
        let p = if req.exec_id.is_empty() {
            &c.init
        } else {
            c.execs
                .get(&req.exec_id)
                .ok_or_else(|| not_found(&req.exec_id))?
        };
        let status = match p.status {
            Status::Created => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Paused => ApiStatus::PAUSED,
            Status::Stopped => ApiStatus::STOPPED,
        };
        let mut resp = api::StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid.max(0) as u32,
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exec_id: req.exec_id.clone(),
            ..Default::default()
        };
        if let Some((status, when)) = p.exit {
            resp.exit_status = status as u32;
            resp.exited_at = Some(timestamp(when)).into();
        }
        Ok(resp)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let root = self.root_of(&req.id)?;
        let (_, v, _) = self.call(&Request::Pids {
            root,
            id: req.id.clone(),
        })?;
        let pids: Vec<i32> = serde_json::from_value(v).map_err(internal)?;
        let all = self.shared.lock();
        let execs: Vec<(String, i32)> = all
            .get(&req.id)
            .map(|c| c.execs.iter().map(|(k, p)| (k.clone(), p.pid)).collect())
            .unwrap_or_default();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let mut info = ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                };
                if let Some((eid, _)) = execs.iter().find(|(_, p)| *p == pid) {
                    let d = ProcessDetails {
                        exec_id: eid.clone(),
                        ..Default::default()
                    };
                    if let Ok(value) = d.write_to_bytes() {
                        info.info = Some(Any {
                            type_url: "containerd.runc.v1.ProcessDetails".into(),
                            value,
                            ..Default::default()
                        })
                        .into();
                    }
                }
                info
            })
            .collect();
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<Empty> {
        let root = self.root_of(&req.id)?;
        self.call(&Request::Pause {
            root,
            id: req.id.clone(),
        })?;
        if let Some(c) = self.shared.lock().get_mut(&req.id) {
            c.init.status = Status::Paused;
        }
        self.shared.publish(
            topics::TASK_PAUSED_EVENT_TOPIC,
            crate::events::pack(&TaskPaused {
                container_id: req.id.clone(),
                ..Default::default()
            }),
        );
        Ok(Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<Empty> {
        let root = self.root_of(&req.id)?;
        self.call(&Request::Resume {
            root,
            id: req.id.clone(),
        })?;
        if let Some(c) = self.shared.lock().get_mut(&req.id) {
            c.init.status = Status::Running;
        }
        self.shared.publish(
            topics::TASK_RESUMED_EVENT_TOPIC,
            crate::events::pack(&TaskResumed {
                container_id: req.id.clone(),
                ..Default::default()
            }),
        );
        Ok(Empty::new())
    }

    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        _req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<Empty> {
        Err(err(
            Code::UNIMPLEMENTED,
            "checkpoint: not implemented by sealrun",
        ))
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<Empty> {
        let root = self.root_of(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .ok_or_else(|| err(Code::INVALID_ARGUMENT, "update: no resources"))?;
        let resources: serde_json::Value = serde_json::from_slice(&resources.value)
            .map_err(|e| err(Code::INVALID_ARGUMENT, format!("update: resources: {e}")))?;
        self.call(&Request::Update {
            root,
            id: req.id.clone(),
            resources,
        })?;
        Ok(Empty::new())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let root = self.root_of(&req.id)?;
        let (_, v, _) = self.call(&Request::Stats {
            root,
            id: req.id.clone(),
        })?;
        let (type_url, value) = crate::metrics::encode(&v).map_err(internal)?;
        let any = Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        };
        Ok(api::StatsResponse {
            stats: Some(any).into(),
            ..Default::default()
        })
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: api::ResizePtyRequest) -> TtrpcResult<Empty> {
        let master = {
            let all = self.shared.lock();
            let c = all.get(&req.id).ok_or_else(|| not_found(&req.id))?;
            let p = if req.exec_id.is_empty() {
                &c.init
            } else {
                c.execs
                    .get(&req.exec_id)
                    .ok_or_else(|| not_found(&req.exec_id))?
            };
            p.master.clone()
        };
        let master = master.ok_or_else(|| err(Code::FAILED_PRECONDITION, "no terminal"))?;
        io::resize(&master, req.width, req.height).map_err(internal)?;
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, _req: api::CloseIORequest) -> TtrpcResult<Empty> {
        // Without a terminal the process holds containerd's stdin FIFO itself: containerd
        // closing its end is the EOF. With one, the copy thread ends when the FIFO closes.
        Ok(Empty::new())
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self.init_pid(&req.id).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: task_pid.max(0) as u32,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<Empty> {
        // One shim serves a whole pod: it ends with the last of its containers.
        if self.shared.lock().is_empty() {
            self.exit.write(1).map_err(internal)?;
        }
        Ok(Empty::new())
    }
}
