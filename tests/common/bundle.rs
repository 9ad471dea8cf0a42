//! [`Bundle`]: a bundle directory with a busybox rootfs and a config.json generated in Rust,
//! so each test tweaks exactly the section it is about.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The capabilities of `runc spec` (and `sealrun spec`).
pub const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default process environment of test bundles.
pub const DEFAULT_ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TERM=xterm",
];

/// A bundle: `dir/config.json` and `dir/rootfs`. The config is plain JSON ([`Bundle::config`])
/// and is written by [`Bundle::write`], which the `Test` helpers call before every
/// `create`/`run`.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Container id this bundle is meant for (its cgroupsPath uses it).
    pub id: String,
    /// The bundle directory.
    pub dir: PathBuf,
    /// The config, edited freely by tests.
    pub config: Value,
}

/// The `runc spec` config, made non-interactive for tests: `terminal: false`, args `["/probe"]`,
/// hostname `sealrun-test`, and an absolute `cgroupsPath`.
pub fn default_config(cgroups_path: &str) -> Value {
    let caps = DEFAULT_CAPS;
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/probe"],
            "env": DEFAULT_ENV,
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "sealrun-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

impl Bundle {
    /// A new bundle in `dir` (created) for container `id`, with a fresh rootfs copy.
    pub fn new(id: &str, dir: &Path, cgroups_path: &str) -> Bundle {
        super::rootfs::copy_tree(super::rootfs::template(), &dir.join("rootfs"));
        Bundle {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            config: default_config(cgroups_path),
        }
    }

    /// The rootfs directory (as on the host).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Write `config.json`.
    pub fn write(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        std::fs::write(self.dir.join("config.json"), text).expect("write config.json");
    }

    /// Set the value at a JSON pointer (`/process/cwd`), creating missing objects on the way;
    /// `Value::Null` removes the key.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        let mut parts: Vec<String> = pointer
            .trim_start_matches('/')
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = parts.pop().expect("pointer has a key");
        let mut cur = &mut self.config;
        for p in parts {
            if let Ok(i) = p.parse::<usize>() {
                cur = &mut cur[i];
            } else {
                if !cur[&p].is_object() && !cur[&p].is_array() {
                    cur[&p] = json!({});
                }
                cur = &mut cur[&p];
            }
        }
        match (cur, last.parse::<usize>()) {
            (Value::Array(a), Ok(i)) => {
                if value.is_null() {
                    a.remove(i);
                } else {
                    a[i] = value;
                }
            }
            (Value::Object(o), _) => {
                if value.is_null() {
                    o.remove(&last);
                } else {
                    o.insert(last, value);
                }
            }
            (other, _) => panic!("cannot set {pointer} in {other}"),
        }
        self
    }

    /// `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Run the probe with these requests (`sysctl=...`, `stat=...`; see tests/probe/probe.rs).
    pub fn probe_args(&mut self, requests: &[&str]) -> &mut Self {
        let mut a = vec!["/probe"];
        a.extend_from_slice(requests);
        self.args(&a)
    }

    /// `process.args = ["/bin/sh", "-c", script]`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["/bin/sh", "-c", script])
    }

    /// `config.process`.
    pub fn process(&mut self) -> &mut Value {
        &mut self.config["process"]
    }

    /// `config.linux`.
    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    /// Append a mount.
    pub fn add_mount(&mut self, mount: Value) -> &mut Self {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is an array")
            .push(mount);
        self
    }

    /// Append a bind mount of the host's `source` at `dest` with `options` (`bind` or `rbind`
    /// among them, as the config would say).
    pub fn bind(&mut self, dest: &str, source: impl AsRef<Path>, options: &[&str]) -> &mut Self {
        self.add_mount(json!({"destination": dest, "type": "bind",
            "source": source.as_ref(), "options": options}))
    }

    /// Remove every mount whose destination is `dest`.
    pub fn remove_mount(&mut self, dest: &str) -> &mut Self {
        if let Some(a) = self.config["mounts"].as_array_mut() {
            a.retain(|m| m["destination"] != dest);
        }
        self
    }

    /// Add (or replace) a namespace entry, with an optional path to join.
    pub fn namespace(&mut self, kind: &str, path: Option<&Path>) -> &mut Self {
        self.remove_namespace(kind);
        let mut ns = json!({"type": kind});
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        if !self.config["linux"]["namespaces"].is_array() {
            self.config["linux"]["namespaces"] = json!([]);
        }
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(ns);
        self
    }

    /// Remove a namespace entry.
    pub fn remove_namespace(&mut self, kind: &str) -> &mut Self {
        if let Some(a) = self.config["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != kind);
        }
        self
    }

    /// A new user namespace mapping container ids 0.. (`size` of them) to host uids from
    /// `uid_host` and host gids from `gid_host`.
    pub fn user_namespace(&mut self, uid_host: u32, gid_host: u32, size: u32) -> &mut Self {
        self.namespace("user", None);
        self.set(
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": uid_host, "size": size}]),
        );
        self.set(
            "/linux/gidMappings",
            json!([{"containerID": 0, "hostID": gid_host, "size": size}]),
        );
        self
    }

    /// Make the root writable (`root.readonly: false`).
    pub fn writable_root(&mut self) -> &mut Self {
        self.config["root"]["readonly"] = json!(false);
        self
    }

    /// Replace the config by `sealrun spec`'s hardened default (from the sealrun binary built by
    /// cargo, whatever runtime is under test), made non-interactive like [`default_config`]:
    /// terminal off, args `["/probe"]`, this bundle's cgroupsPath.
    pub fn use_sealrun_spec(&mut self) -> &mut Self {
        let tmp = self.dir.join("spec-tmp");
        std::fs::create_dir_all(&tmp).expect("mkdir spec-tmp");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealrun"))
            .args(["spec", "--bundle"])
            .arg(&tmp)
            .output()
            .expect("run sealrun spec");
        assert!(out.status.success(), "sealrun spec: {out:?}");
        let text = std::fs::read_to_string(tmp.join("config.json")).expect("read spec");
        std::fs::remove_dir_all(&tmp).expect("rm spec-tmp");
        let cg = self.config["linux"]["cgroupsPath"].clone();
        self.config = serde_json::from_str(&text).expect("spec is JSON");
        self.config["process"]["terminal"] = json!(false);
        self.config["process"]["args"] = json!(["/probe"]);
        self.config["linux"]["cgroupsPath"] = cg;
        self
    }
}
