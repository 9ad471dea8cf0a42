//! `sealrun features`: what this runtime supports, in the runtime-spec features.md shape.
//! containerd and the kubelet read it; every value here is backed by code.

use serde_json::{json, Value};

use crate::hooks::HookKind;
use crate::namespaces::NsKind;

/// The features document.
pub fn features() -> Value {
    let mut options: Vec<&str> = crate::spec::KNOWN_MOUNT_OPTIONS.to_vec();
    options.sort();
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let mut namespaces: Vec<&str> = NsKind::ALL.iter().map(|k| k.spec_name()).collect();
    namespaces.sort();
    let hooks: Vec<&str> = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
        HookKind::Poststart,
        HookKind::Poststop,
    ]
    .iter()
    .map(|h| h.name())
    .collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": hooks,
        "mountOptions": options,
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": false
            },
            "seccomp": crate::seccomp::features_json(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "run.sealrun.version": env!("CARGO_PKG_VERSION"),
            "run.sealrun.landlock.abi": crate::landlock::abi().to_string(),
            "run.sealrun.sealed-exe": "memfd",
        }
    })
}
