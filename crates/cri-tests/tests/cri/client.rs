//! A blocking CRI client (`runtime.v1` from the k8s-cri crate, over tonic on containerd's unix
//! socket) bound to one private containerd, with the pod and container configs the tests use.
//! Dropping it removes every pod it made through the CRI, then cleans up the daemon.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint};

use super::daemon::{Daemon, BUSYBOX};

const POLL: Duration = Duration::from_millis(20);
const POLL_ROUNDS: u32 = 3000;

/// One pod's identity and config (the CRI wants the config again at CreateContainer).
pub struct Pod {
    pub id: String,
    pub config: PodSandboxConfig,
}

pub struct Cri {
    pub handler: String,
    pub daemon: Daemon,
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    pods: Vec<String>,
    /// Every pod and container id, for the shim-socket and cgroup checks.
    pub ids: Vec<String>,
}

impl Cri {
    /// A private containerd, ready (its CRI `Version` answers), pods run with `handler`.
    pub fn start(handler: &str) -> Cri {
        let mut daemon = Daemon::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = daemon.address.clone();
        let channel = rt
            .block_on(async move {
                // tonic wants a URI; the connector ignores it and dials the unix socket.
                Endpoint::try_from("http://localhost")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_| {
                        let socket = socket.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(socket).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(s))
                        }
                    }))
                    .await
            })
            .unwrap();
        let mut client = RuntimeServiceClient::new(channel);
        let mut last = String::new();
        let mut ready = false;
        for _ in 0..POLL_ROUNDS {
            match rt.block_on(client.version(VersionRequest::default())) {
                Ok(_) => {
                    ready = true;
                    break;
                }
                Err(e) => last = e.to_string(),
            }
            daemon.check_alive();
            sleep(POLL);
        }
        assert!(
            ready,
            "the CRI never answered Version: {last}\n{}",
            daemon.log_tail()
        );
        Cri {
            handler: handler.to_string(),
            daemon,
            rt,
            client,
            pods: Vec::new(),
            ids: Vec::new(),
        }
    }

    fn call<T, F>(&mut self, what: &str, f: impl FnOnce(RuntimeServiceClient<Channel>) -> F) -> T
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match self.try_call(f) {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e}\n{}", self.daemon.log_tail()),
        }
    }

    fn try_call<T, F>(
        &mut self,
        f: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, tonic::Status>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client.clone();
        self.rt.block_on(f(client)).map(tonic::Response::into_inner)
    }

    /// A host-network pod (no CNI) below the test's cgroup parent; `share_pid` gives its
    /// containers the pod's PID namespace (else each has its own, as the kubelet's default).
    pub fn run_pod(&mut self, name: &str, share_pid: bool) -> Pod {
        let pid = if share_pid {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        };
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "sealrun-test".into(),
                attempt: 0,
            }),
            hostname: String::new(),
            log_directory: self.daemon.log_dir.join(name).to_string_lossy().into(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.daemon.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: pid as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: self.handler.clone(),
        };
        let resp = self.call("RunPodSandbox", |mut c| async move {
            c.run_pod_sandbox(req).await
        });
        self.pods.push(resp.pod_sandbox_id.clone());
        self.ids.push(resp.pod_sandbox_id.clone());
        Pod {
            id: resp.pod_sandbox_id,
            config,
        }
    }

    /// The container config the tests start from: busybox running `cmd`, logging to
    /// `<pod log dir>/<name>.log`.
    pub fn container_config(&self, name: &str, cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        }
    }

    pub fn create(&mut self, pod: &Pod, config: ContainerConfig) -> String {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        let resp = self.call("CreateContainer", |mut c| async move {
            c.create_container(req).await
        });
        self.ids.push(resp.container_id.clone());
        resp.container_id
    }

    pub fn start_container(&mut self, id: &str) {
        let req = StartContainerRequest {
            container_id: id.into(),
        };
        self.call("StartContainer", |mut c| async move {
            c.start_container(req).await
        });
    }

    /// Create + start.
    pub fn run_container(&mut self, pod: &Pod, config: ContainerConfig) -> String {
        let id = self.create(pod, config);
        self.start_container(&id);
        id
    }

    pub fn exec_sync(&mut self, id: &str, cmd: &[&str]) -> ExecSyncResponse {
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 60,
        };
        self.call("ExecSync", |mut c| async move { c.exec_sync(req).await })
    }

    pub fn status(&mut self, id: &str) -> ContainerStatus {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let resp = self.call("ContainerStatus", |mut c| async move {
            c.container_status(req).await
        });
        resp.status.expect("ContainerStatus without a status")
    }

    /// Waits until container `id` has exited; returns its status.
    pub fn wait_exited(&mut self, id: &str) -> ContainerStatus {
        for _ in 0..POLL_ROUNDS {
            let st = self.status(id);
            if st.state == ContainerState::ContainerExited as i32 {
                return st;
            }
            sleep(POLL);
        }
        panic!(
            "container {id} never exited: {:?}\n{}",
            self.status(id),
            self.daemon.log_tail()
        );
    }

    pub fn stats(&mut self, id: &str) -> ContainerStats {
        let req = ContainerStatsRequest {
            container_id: id.into(),
        };
        let resp = self.call("ContainerStats", |mut c| async move {
            c.container_stats(req).await
        });
        resp.stats.expect("ContainerStats without stats")
    }

    pub fn stop_container(&mut self, id: &str, timeout: i64) {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.call("StopContainer", |mut c| async move {
            c.stop_container(req).await
        });
    }

    pub fn update_resources(&mut self, id: &str, resources: LinuxContainerResources) {
        let req = UpdateContainerResourcesRequest {
            container_id: id.into(),
            linux: Some(resources),
            ..Default::default()
        };
        self.call("UpdateContainerResources", |mut c| async move {
            c.update_container_resources(req).await
        });
    }

    pub fn remove_container(&mut self, id: &str) {
        let req = RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call("RemoveContainer", |mut c| async move {
            c.remove_container(req).await
        });
    }

    pub fn pod_state(&mut self, pod: &Pod) -> i32 {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: false,
        };
        let resp = self.call("PodSandboxStatus", |mut c| async move {
            c.pod_sandbox_status(req).await
        });
        resp.status
            .expect("PodSandboxStatus without a status")
            .state
    }

    pub fn stop_pod(&mut self, pod: &Pod) {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        self.call("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(req).await
        });
    }

    pub fn remove_pod(&mut self, pod: &Pod) {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: pod.id.clone(),
        };
        self.call("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(req).await
        });
        self.pods.retain(|p| p != &pod.id);
    }

    /// The CRI log file of container `name` in `pod`.
    pub fn log_path(&self, pod: &Pod, name: &str) -> PathBuf {
        PathBuf::from(&pod.config.log_directory).join(format!("{name}.log"))
    }

    /// Waits until the CRI log of `name` holds `needle` (the log is written asynchronously).
    pub fn wait_log(&self, pod: &Pod, name: &str, needle: &str) -> String {
        let path = self.log_path(pod, name);
        let mut text = String::new();
        for _ in 0..POLL_ROUNDS {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            sleep(POLL);
        }
        panic!("{} never held {needle:?}; it has:\n{text}", path.display());
    }

    /// Asserts that nothing of the pods' lives is left (cgroups, mounts, shims, their sockets,
    /// runtime state), waiting for asynchronous teardown.
    pub fn assert_nothing_left(&self) {
        let left = self.daemon.wait_clean(&self.ids);
        assert!(
            left.is_empty(),
            "left behind:\n{}\n{}",
            left.join("\n"),
            self.daemon.log_tail()
        );
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // Through the CRI first, as the kubelet would, while containerd is up.
        for id in std::mem::take(&mut self.pods) {
            let _ = self.try_call(|mut c| {
                let req = StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                async move { c.stop_pod_sandbox(req).await }
            });
            let _ = self.try_call(|mut c| {
                let req = RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                };
                async move { c.remove_pod_sandbox(req).await }
            });
        }
        let ids = self.ids.clone();
        self.daemon.cleanup(&ids);
    }
}
