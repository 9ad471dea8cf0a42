//! The [`Plan`]: everything the container needs, resolved and validated before any process is
//! cloned. The init only executes it.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{Hooks, LinuxIdMapping, LinuxResources, Spec};

use super::devices::{cgroup_device_rules, is_dev, plan_devices, DeviceNode};
use super::host::HostFacts;
use super::mounts::{clean_container_path, plan_mount, MountKind, MountPlan};
use super::namespaces::{Namespaces, NsKind};
use super::process::{plan_process, ProcessPlan};
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};

/// Hardening layers that can be switched off for testing only, from the command line
/// (`--unsafe-disable LAYER`), never from a container's config. Each attack test runs once
/// with its layer off to prove the test can fail. Only a build with the cargo feature
/// `unsafe-test-switches` can switch a layer off ([`Layers::disable`]); without it every
/// `Layers` value has every layer on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layers {
    /// Sealed memfd self-copy.
    pub(crate) no_selfexe: bool,
    /// Landlock.
    pub(crate) no_landlock: bool,
    /// seccomp.
    pub(crate) no_seccomp: bool,
    /// Close-on-exec sweep of inherited fds.
    pub(crate) no_fd_hygiene: bool,
    /// In-root path resolution and /proc, /dev/null, /dev/console checks.
    pub(crate) no_path_safety: bool,
    /// Non-dumpable runtime processes.
    pub(crate) no_nondumpable: bool,
}

impl Layers {
    /// Names accepted by `--unsafe-disable`.
    pub const NAMES: &'static [&'static str] = &[
        "selfexe",
        "landlock",
        "seccomp",
        "fd-hygiene",
        "path-safety",
        "nondumpable",
    ];

    /// Switch one layer off by name (builds with the `unsafe-test-switches` feature only).
    pub fn disable(&mut self, name: &str) -> Result<()> {
        if !cfg!(feature = "unsafe-test-switches") {
            return Err(Error::Unsupported(format!(
                "--unsafe-disable {name}: this build has no test switches (cargo feature \
                 unsafe-test-switches)"
            )));
        }
        match name {
            "selfexe" => self.no_selfexe = true,
            "landlock" => self.no_landlock = true,
            "seccomp" => self.no_seccomp = true,
            "fd-hygiene" => self.no_fd_hygiene = true,
            "path-safety" => self.no_path_safety = true,
            "nondumpable" => self.no_nondumpable = true,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "--unsafe-disable: unknown layer {other:?} (known: {})",
                    Layers::NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Every layer switched off in `self` or in `other`.
    pub fn union(self, other: Layers) -> Layers {
        Layers {
            no_selfexe: self.no_selfexe || other.no_selfexe,
            no_landlock: self.no_landlock || other.no_landlock,
            no_seccomp: self.no_seccomp || other.no_seccomp,
            no_fd_hygiene: self.no_fd_hygiene || other.no_fd_hygiene,
            no_path_safety: self.no_path_safety || other.no_path_safety,
            no_nondumpable: self.no_nondumpable || other.no_nondumpable,
        }
    }

    /// Whether the sealed self-copy is switched off.
    pub fn selfexe_off(&self) -> bool {
        self.no_selfexe
    }

    /// The names of the layers switched off, as owned strings (for records).
    pub fn disabled_names(&self) -> Vec<String> {
        self.disabled().iter().map(|s| s.to_string()).collect()
    }

    /// The names of the layers switched off.
    pub fn disabled(&self) -> Vec<&'static str> {
        let flags = [
            self.no_selfexe,
            self.no_landlock,
            self.no_seccomp,
            self.no_fd_hygiene,
            self.no_path_safety,
            self.no_nondumpable,
        ];
        Layers::NAMES
            .iter()
            .zip(flags)
            .filter(|(_, off)| *off)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Options of `create`/`run` that are not in the config. Start from
/// [`CreateOptions::new`] and set fields: new fields may be added.
#[non_exhaustive]
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory (absolute).
    pub bundle: PathBuf,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// Socket-activation descriptors handed on (systemd's `LISTEN_FDS` for this process, as
    /// runc): fds 3.. of the caller, before the `preserve_fds` ones, and `LISTEN_FDS`/
    /// `LISTEN_PID=1` added to the process's environment.
    #[serde(default)]
    pub listen_fds: u32,
    /// The caller will proxy a terminal itself (foreground `run` without a console socket).
    pub proxy_terminal: bool,
    /// Layers switched off for testing.
    pub layers: Layers,
    /// The operator policy (default: none; `create` sets it from `Runtime::policy`).
    pub policy: crate::policy::Policy,
}

impl CreateOptions {
    /// Options for container `id` from the bundle directory `bundle`; everything else off.
    pub fn new(id: impl Into<String>, bundle: impl Into<PathBuf>) -> CreateOptions {
        CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            ..CreateOptions::default()
        }
    }
}

/// One uid or gid mapping line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    /// First id inside the namespace.
    pub container_id: u32,
    /// First id outside.
    pub host_id: u32,
    /// Number of ids.
    pub size: u32,
}

impl IdMap {
    /// Map an id inside the namespace to the host, if mapped.
    pub fn to_host(maps: &[IdMap], id: u32) -> Option<u32> {
        maps.iter()
            .find(|m| id >= m.container_id && id - m.container_id < m.size)
            .map(|m| m.host_id + (id - m.container_id))
    }
}

/// Everything the container needs, decided before cloning. `create` persists it in the
/// state directory (`plan.json`); every later command reads it and nothing re-parses the
/// config.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Container id.
    pub id: String,
    /// Options from the command line.
    pub opts: CreateOptions,
    /// `ociVersion` of the config.
    pub oci_version: String,
    /// Absolute, canonical rootfs path.
    pub rootfs: PathBuf,
    /// `root.readonly`.
    pub root_readonly: bool,
    /// Namespaces to create and join.
    pub namespaces: Namespaces,
    /// uid mappings (user namespace).
    pub uid_maps: Vec<IdMap>,
    /// gid mappings.
    pub gid_maps: Vec<IdMap>,
    /// The runtime is not root in the initial user namespace (rootless).
    #[serde(default)]
    pub rootless: bool,
    /// How the runtime writes the id maps (itself, or `newuidmap`/`newgidmap`).
    #[serde(default)]
    pub id_map_writers: super::rootless::IdMapWriters,
    /// Hostname.
    pub hostname: Option<String>,
    /// Domainname.
    pub domainname: Option<String>,
    /// Mounts, in order.
    pub mounts: Vec<MountPlan>,
    /// Device nodes to create (empty when /dev is bind-mounted from the host).
    pub devices: Vec<DeviceNode>,
    /// Masked paths.
    pub masked_paths: Vec<PathBuf>,
    /// Read-only paths.
    pub readonly_paths: Vec<PathBuf>,
    /// sysctl settings, validated against the namespaces.
    pub sysctl: Vec<(String, String)>,
    /// Propagation for the container's root (`rootfsPropagation`); default rslave.
    #[serde(with = "super::ser::ms_flags")]
    pub rootfs_propagation: MsFlags,
    /// `personality(2)` value, if set.
    pub personality: Option<libc::c_ulong>,
    /// Time namespace offsets `(clock, secs, nanosecs)`.
    pub time_offsets: Vec<(String, i64, u32)>,
    /// The runtime has no privilege (rootless), so the init creates the time namespace once
    /// it is root of the container's user namespace, which then owns it.
    #[serde(default)]
    pub time_ns_in_userns: bool,
    /// The process.
    pub process: ProcessPlan,
    /// Hooks.
    pub hooks: Hooks,
    /// Resolved cgroup.
    pub cgroup: Cgroup,
    /// Effective resources (device rules completed).
    pub resources: LinuxResources,
    /// Compiled seccomp profile.
    pub seccomp: Option<crate::seccomp::Compiled>,
    /// Landlock policies, decided for the init and for processes `exec` starts.
    pub landlock: Landlock,
    /// The kernel's Landlock ABI when the plan was made.
    pub landlock_abi: i32,
    /// Annotations.
    pub annotations: HashMap<String, String>,
    /// The rootfs is mounted id-mapped through the container's user namespace
    /// (`run.sealrun.rootfs.idmap`).
    #[serde(default)]
    pub rootfs_idmap: bool,
}

impl Plan {
    /// Whether the container runs in a user namespace other than the initial one: its own
    /// (created or joined), or the runtime's (rootless podman runs the runtime as root of one).
    pub fn in_user_namespace(&self) -> bool {
        self.namespaces.has(NsKind::User) || self.rootless
    }
}

/// The config's id mappings as [`IdMap`]s.
pub(super) fn id_maps(list: &Option<Vec<LinuxIdMapping>>) -> Vec<IdMap> {
    list.iter()
        .flatten()
        .map(|m| IdMap {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        })
        .collect()
}

/// Validate the `ociVersion` field: a semver with major version 1.
fn check_version(v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(Error::config("ociVersion", "missing"));
    }
    let major = v.split('.').next().unwrap_or_default();
    match major.parse::<u64>() {
        Ok(1) => Ok(()),
        Ok(m) => Err(Error::config(
            "ociVersion",
            format!("{v}: major version {m} is not supported (sealrun implements 1.x)"),
        )),
        Err(_) => Err(Error::config(
            "ociVersion",
            format!("{v:?} is not a version"),
        )),
    }
}

/// Which namespace a sysctl key needs, as the runtime-spec and runc require.
fn sysctl_namespace(key: &str) -> Option<NsKind> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(NsKind::Ipc)
    } else if key.starts_with("net.") {
        Some(NsKind::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(NsKind::Uts)
    } else {
        None
    }
}

/// The sysctl settings, each checked against the namespaces it needs; `domainname` is the
/// config's own field, which `kernel.domainname` must not contradict.
fn plan_sysctl(
    map: &Option<HashMap<String, String>>,
    ns: &Namespaces,
    domainname: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in map.iter().flatten() {
        let field = format!("linux.sysctl[{k:?}]");
        if k.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
            return Err(Error::config(field, "is not a sysctl name"));
        }
        // The config has a field of its own for these; two sources for one value would leave
        // the result to the order they are applied in (runc refuses `kernel.hostname` too).
        if k == "kernel.hostname" {
            return Err(Error::config(
                field,
                "is not allowed as it conflicts with the OCI \"hostname\" field",
            ));
        }
        if k == "kernel.domainname" && domainname.is_some_and(|d| !d.is_empty() && d != v) {
            return Err(Error::config(
                field,
                "is not allowed as it conflicts with the OCI \"domainname\" field",
            ));
        }
        match sysctl_namespace(k) {
            Some(kind) if ns.has(kind) => out.push((k.clone(), v.clone())),
            Some(kind) => {
                return Err(Error::config(
                    field,
                    format!("needs a {} namespace of its own", kind.spec_name()),
                ))
            }
            None => {
                return Err(Error::config(
                    field,
                    "is not in a separate kernel namespace, so a container may not set it",
                ))
            }
        }
    }
    out.sort();
    Ok(out)
}

fn rootfs_propagation(v: &Option<String>) -> Result<MsFlags> {
    Ok(match v.as_deref().unwrap_or("") {
        "" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::config(
                "linux.rootfsPropagation",
                format!("{other:?} is not a propagation mode"),
            ))
        }
    })
}

fn check_hooks(hooks: &Hooks) -> Result<()> {
    #[allow(deprecated)]
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for (i, h) in list.iter().flatten().enumerate() {
            if !h.path().is_absolute() {
                return Err(Error::config(
                    format!("hooks.{name}[{i}].path"),
                    format!("{} is not an absolute path", h.path().display()),
                ));
            }
            if let Some(t) = h.timeout() {
                if t <= 0 {
                    return Err(Error::config(
                        format!("hooks.{name}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn rootfs(spec: &Spec, host: &HostFacts) -> Result<(PathBuf, bool)> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::config("root", "missing"))?;
    let path = host
        .rootfs
        .clone()
        .map_err(|why| Error::config("root.path", why))?;
    Ok((path, root.readonly().unwrap_or(false)))
}

/// Refuse an LSM label the host cannot apply (sealrun applies none): a hardened runtime does
/// not fail open. The annotation `run.sealrun.lsm=best-effort` accepts running without it.
fn check_lsm(spec: &Spec, host: &HostFacts, annotations: &HashMap<String, String>) -> Result<()> {
    if annotations.get(LSM_ANNOTATION).map(String::as_str) == Some("best-effort") {
        return Ok(());
    }
    let process = spec.process().as_ref();
    let asked = [
        (
            "process.apparmorProfile",
            process.and_then(|p| p.apparmor_profile().clone()),
            "AppArmor",
            host.apparmor,
        ),
        (
            "process.selinuxLabel",
            process.and_then(|p| p.selinux_label().clone()),
            "SELinux",
            host.selinux,
        ),
        (
            "linux.mountLabel",
            spec.linux().as_ref().and_then(|l| l.mount_label().clone()),
            "SELinux",
            host.selinux,
        ),
    ];
    for (field, value, lsm, enabled) in asked {
        if value.is_some_and(|v| !v.is_empty()) {
            let why = if enabled {
                format!("sealrun does not apply {lsm} labels")
            } else {
                format!("{lsm} is not enabled on this host")
            };
            return Err(Error::config(
                field,
                format!("{why}; refusing to run without it (annotation {LSM_ANNOTATION}=best-effort accepts that)"),
            ));
        }
    }
    Ok(())
}

/// The annotation that accepts running without a requested AppArmor profile or SELinux label.
pub const LSM_ANNOTATION: &str = "run.sealrun.lsm";

/// Whether the container ends up in the runtime's network namespace: no network namespace of
/// its own, or one joined by a path that is ours.
pub(super) fn shares_host_network(ns: &Namespaces, host: &HostFacts) -> bool {
    if ns.creates(NsKind::Network) {
        return false;
    }
    match ns.joins(NsKind::Network) {
        None => true,
        Some(path) => host.is_own_net_ns(path),
    }
}

/// The Landlock policies of a container, decided at `create`: the init's, and those of the
/// processes `exec` starts, which depend on whether such a process may hold CAP_SYS_ADMIN.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Landlock {
    /// The container's own process.
    pub init: crate::landlock::Policy,
    /// A process started by `exec` that may not hold CAP_SYS_ADMIN, or why one is refused.
    pub exec: std::result::Result<crate::landlock::Policy, String>,
    /// A process started by `exec` that may hold CAP_SYS_ADMIN, or why one is refused.
    pub exec_sys_admin: std::result::Result<crate::landlock::Policy, String>,
}

impl Landlock {
    /// The policy of a process started by `exec`.
    pub fn for_exec(&self, cap_sys_admin: bool) -> Result<&crate::landlock::Policy> {
        let policy = if cap_sys_admin {
            &self.exec_sys_admin
        } else {
            &self.exec
        };
        policy
            .as_ref()
            .map_err(|why| Error::InvalidArgument(why.clone()))
    }

    fn plan(
        annotations: &HashMap<String, String>,
        host_network: bool,
        init_sys_admin: bool,
        host: &HostFacts,
        layers: &Layers,
    ) -> Result<Landlock> {
        let decide = |cap_sys_admin: bool| -> Result<crate::landlock::Policy> {
            if layers.no_landlock {
                return Ok(crate::landlock::Policy {
                    enabled: false,
                    ..crate::landlock::Policy::default()
                });
            }
            let policy = crate::landlock::policy(
                annotations,
                &crate::landlock::Context {
                    host_network,
                    cap_sys_admin,
                },
            )?;
            crate::landlock::check(&policy, host.landlock_abi)?;
            Ok(policy)
        };
        Ok(Landlock {
            init: decide(init_sys_admin)?,
            exec: decide(false).map_err(|e| e.to_string()),
            exec_sys_admin: decide(true).map_err(|e| e.to_string()),
        })
    }
}

/// Resolve a parsed config into a [`Plan`]. Pure: everything it needs to know about the host
/// comes in `host`.
pub fn plan(spec: &Spec, opts: CreateOptions, host: &HostFacts) -> Result<Plan> {
    check_version(spec.version())?;
    let (rootfs, root_readonly) = rootfs(spec, host)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    let process = plan_process(process, "process", host.cap_last_cap)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::config("linux", "missing"))?;
    let namespaces = Namespaces::from_config(linux.namespaces().as_deref().unwrap_or(&[]))?;
    if !namespaces.has(NsKind::Mount) {
        return Err(Error::config(
            "linux.namespaces",
            "a mount namespace is required (sealrun never mounts in the host's)",
        ));
    }
    let uid_maps = id_maps(linux.uid_mappings());
    let gid_maps = id_maps(linux.gid_mappings());
    if namespaces.creates(NsKind::User) && (uid_maps.is_empty() || gid_maps.is_empty()) {
        return Err(Error::config(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    // With a joined user namespace the mappings are those of the namespace; runc requires
    // them in the config and podman writes them, so they are accepted (and not written).
    if !namespaces.has(NsKind::User) && (!uid_maps.is_empty() || !gid_maps.is_empty()) {
        return Err(Error::config(
            "linux.uidMappings",
            "mappings are only valid with a user namespace",
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !namespaces.has(NsKind::Uts) {
        return Err(Error::config(
            "hostname",
            "setting it needs a uts namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !namespaces.has(NsKind::Uts) {
        return Err(Error::config(
            "domainname",
            "setting it needs a uts namespace",
        ));
    }
    let id_map_writers = match &host.rootless {
        Some(facts) => super::rootless::check(
            &namespaces,
            &uid_maps,
            &gid_maps,
            &process.additional_gids,
            facts,
        )?,
        None => Default::default(),
    };
    let mut process = process;
    process.setgroups_denied = id_map_writers.setgroups_denied;
    if opts.listen_fds > 0 {
        for var in [
            format!("LISTEN_FDS={}", opts.listen_fds),
            "LISTEN_PID=1".into(),
        ] {
            process
                .env
                .push(CString::new(var).map_err(|e| Error::InvalidArgument(e.to_string()))?);
        }
    }
    let mut mounts = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mounts.push(plan_mount(i, m, &opts.bundle)?);
    }
    if let Some(m) = mounts.iter().find(|m| m.idmap.is_some()) {
        super::idmap::check_context(m.index, &namespaces, host)?;
    }
    let dev_from_host = mounts
        .iter()
        .any(|m| is_dev(&m.destination) && matches!(m.kind, MountKind::Bind { .. }));
    let devices = if dev_from_host {
        Vec::new()
    } else {
        plan_devices(linux.devices().as_deref().unwrap_or(&[]))?
    };
    let mut resources = linux.resources().clone().unwrap_or_default();
    crate::cgroups::resources::validate(&resources)?;
    let rules = cgroup_device_rules(
        resources.devices().as_deref().unwrap_or(&[]),
        linux.devices().as_deref().unwrap_or(&[]),
    );
    resources.set_devices(Some(rules));
    let paths = |list: &Option<Vec<String>>, field: &str| -> Result<Vec<PathBuf>> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| {
                let p = Path::new(p);
                if p.is_absolute() {
                    Ok(clean_container_path(p))
                } else {
                    Err(Error::config(
                        format!("linux.{field}[{i}]"),
                        format!("{} is not an absolute path", p.display()),
                    ))
                }
            })
            .collect()
    };
    let masked_paths = paths(linux.masked_paths(), "maskedPaths")?;
    let readonly_paths = paths(linux.readonly_paths(), "readonlyPaths")?;
    let sysctl = plan_sysctl(linux.sysctl(), &namespaces, spec.domainname().as_deref())?;
    let hooks = spec.hooks().clone().unwrap_or_default();
    check_hooks(&hooks)?;
    if process.terminal && opts.console_socket.is_none() && !opts.proxy_terminal {
        return Err(Error::InvalidArgument(
            "process.terminal is true: --console-socket is required (or use run in the foreground)"
                .into(),
        ));
    }
    if !process.terminal && opts.console_socket.is_some() {
        return Err(Error::InvalidArgument(
            "--console-socket given but process.terminal is false".into(),
        ));
    }
    let personality = linux.personality().as_ref().map(|p| match p.domain() {
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
    });
    let mut time_offsets = Vec::new();
    for (clock, off) in linux.time_offsets().iter().flatten() {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::config(
                format!("linux.timeOffsets[{clock:?}]"),
                "only monotonic and boottime can be offset",
            ));
        }
        time_offsets.push((
            clock.clone(),
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0),
        ));
    }
    if !time_offsets.is_empty() && !namespaces.creates(NsKind::Time) {
        return Err(Error::config(
            "linux.timeOffsets",
            "offsets need a new time namespace",
        ));
    }
    let annotations = spec.annotations().clone().unwrap_or_default();
    check_lsm(spec, host, &annotations)?;
    let rootfs_idmap = super::idmap::rootfs(&annotations, &namespaces, host)?;
    let time_ns_in_userns = namespaces.creates(NsKind::Time) && host.rootless.is_some();
    let cgroup = Cgroup::resolve_in(
        &host.cgroup_layout,
        &host.own_cgroups,
        linux.cgroups_path().as_ref().and_then(|p| p.to_str()),
        &opts.id,
    )?;
    let landlock = Landlock::plan(
        &annotations,
        shares_host_network(&namespaces, host),
        process.has_cap(caps::Capability::CAP_SYS_ADMIN),
        host,
        &opts.layers,
    )?;
    // One program for the init and exec: it refuses open_by_handle_at while the init's
    // Landlock confines the filesystem (unless the operator policy allows it).
    let mut seccomp = match linux.seccomp() {
        Some(s) if !opts.layers.no_seccomp => Some(crate::policy::compile_seccomp(
            s,
            &landlock.init,
            &opts.policy,
        )?),
        _ => None,
    };
    // A relative listenerPath is the bundle's, like every relative path of the config: the
    // runtime no longer changes its working directory to the bundle.
    if let Some(l) = seccomp.as_mut().and_then(|c| c.listener.as_mut()) {
        l.path = opts.bundle.join(&l.path);
    }
    Ok(Plan {
        id: opts.id.clone(),
        oci_version: spec.version().clone(),
        rootfs,
        root_readonly,
        namespaces,
        uid_maps,
        gid_maps,
        rootless: host.rootless.is_some() || host.in_user_namespace,
        id_map_writers,
        hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
        mounts,
        devices,
        masked_paths,
        readonly_paths,
        sysctl,
        rootfs_propagation: rootfs_propagation(linux.rootfs_propagation())?,
        personality,
        time_offsets,
        time_ns_in_userns,
        process,
        hooks,
        cgroup,
        resources,
        seccomp,
        landlock,
        landlock_abi: host.landlock_abi,
        annotations,
        rootfs_idmap,
        opts,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The default config (`sealrun spec`), planned on a made-up host.
    pub(crate) fn plan_for_tests() -> Plan {
        let spec: Spec =
            serde_json::from_value(crate::spec::default_config(false).unwrap()).unwrap();
        let opts = CreateOptions {
            id: "c1".into(),
            bundle: "/bundle".into(),
            proxy_terminal: true,
            ..CreateOptions::default()
        };
        plan(&spec, opts, &HostFacts::for_tests("/bundle/rootfs")).unwrap()
    }

    #[test]
    fn the_plan_survives_the_state_directory() {
        let p = plan_for_tests();
        let json = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.process.args, p.process.args);
        assert_eq!(back.process.caps, p.process.caps);
        assert_eq!(back.rootfs_propagation, p.rootfs_propagation);
        let (a, b) = (back.seccomp.unwrap(), p.seccomp.unwrap());
        assert_eq!(a.filters[0].program, b.filters[0].program);
    }

    #[test]
    fn the_bounding_drop_list_comes_from_the_host() {
        let spec: Spec =
            serde_json::from_value(crate::spec::default_config(false).unwrap()).unwrap();
        let mut host = HostFacts::for_tests("/r");
        host.cap_last_cap = 45;
        let p = plan(
            &spec,
            CreateOptions {
                id: "c".into(),
                proxy_terminal: true,
                ..Default::default()
            },
            &host,
        )
        .unwrap();
        let drop = p.process.bounding_drop();
        // Numbers this build has no name for are dropped too; kept caps are not.
        assert!(
            drop.contains(&41) && drop.contains(&45) && !drop.contains(&46),
            "{drop:?}"
        );
        assert!(
            !drop.contains(&(caps::Capability::CAP_KILL.index())),
            "{drop:?}"
        );
        assert_eq!(drop.len() + p.process.caps.bounding.len(), 46);
    }

    #[test]
    fn lsm_labels_fail_closed() {
        let mut v = crate::spec::default_config(false).unwrap();
        v["process"]["apparmorProfile"] = "docker-default".into();
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        let host = HostFacts::for_tests("/r");
        let opts = || CreateOptions {
            id: "c".into(),
            proxy_terminal: true,
            ..Default::default()
        };
        let e = plan(&spec, opts(), &host).unwrap_err().to_string();
        assert!(
            e.contains("process.apparmorProfile") && e.contains("not enabled"),
            "{e}"
        );
        v["annotations"] = serde_json::json!({LSM_ANNOTATION: "best-effort"});
        let spec: Spec = serde_json::from_value(v).unwrap();
        assert!(plan(&spec, opts(), &host).is_ok());
        let mut v = crate::spec::default_config(false).unwrap();
        v["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0".into();
        let spec: Spec = serde_json::from_value(v).unwrap();
        let e = plan(&spec, opts(), &host).unwrap_err().to_string();
        assert!(
            e.contains("linux.mountLabel") && e.contains("SELinux"),
            "{e}"
        );
    }

    #[test]
    fn a_relative_listener_path_is_the_bundles() {
        let mut v = crate::spec::default_config(false).unwrap();
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
        let spec: Spec = serde_json::from_value(v).unwrap();
        let mut opts = CreateOptions::new("c", "/bundle");
        opts.proxy_terminal = true;
        let p = plan(&spec, opts, &HostFacts::for_tests("/bundle/rootfs")).unwrap();
        let listener = p.seccomp.unwrap().listener.unwrap();
        assert_eq!(listener.path, std::path::Path::new("/bundle/agent.sock"));
    }

    #[test]
    fn host_network_is_decided_from_host_facts() {
        let mut host = HostFacts::for_tests("/r");
        let mut ns = Namespaces::default();
        assert!(shares_host_network(&ns, &host));
        ns.join.push((NsKind::Network, "/run/netns/x".into()));
        host.joined_ns.push(("/run/netns/x".into(), host.net_ns));
        assert!(shares_host_network(&ns, &host));
        host.joined_ns[0].1 = Some((4, 1));
        assert!(!shares_host_network(&ns, &host));
    }

    #[test]
    fn version_major_must_be_one() {
        assert!(check_version("1.0.2-dev").is_ok());
        assert!(check_version("1.2.0").is_ok());
        let e = check_version("2.0.0").unwrap_err().to_string();
        assert!(
            e.contains("ociVersion") && e.contains("major version 2"),
            "{e}"
        );
        assert!(check_version("")
            .unwrap_err()
            .to_string()
            .contains("ociVersion"));
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let mut ns = Namespaces::default();
        let mut map = HashMap::new();
        map.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        let e = plan_sysctl(&Some(map.clone()), &ns, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("net.ipv4.ip_forward") && e.contains("network"),
            "{e}"
        );
        ns.new.push(NsKind::Network);
        assert_eq!(plan_sysctl(&Some(map), &ns, None).unwrap().len(), 1);
        let mut host = HashMap::new();
        host.insert("vm.swappiness".to_string(), "1".to_string());
        assert!(plan_sysctl(&Some(host), &ns, None).is_err());
    }

    #[test]
    fn id_map_lookup() {
        let maps = [IdMap {
            container_id: 0,
            host_id: 100000,
            size: 65536,
        }];
        assert_eq!(IdMap::to_host(&maps, 5), Some(100005));
        assert_eq!(IdMap::to_host(&maps, 70000), None);
    }

    #[test]
    fn layers_by_name() {
        let mut l = Layers::default();
        if !cfg!(feature = "unsafe-test-switches") {
            let e = l.disable("landlock").unwrap_err().to_string();
            assert!(e.contains("unsafe-test-switches"), "{e}");
            assert_eq!(l, Layers::default(), "nothing switched off");
            return;
        }
        l.disable("landlock").unwrap();
        l.disable("selfexe").unwrap();
        assert_eq!(l.disabled(), vec!["selfexe", "landlock"]);
        assert!(l.disable("everything").is_err());
    }
}
