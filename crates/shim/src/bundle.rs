//! The bundle side of a task: the state root from containerd's runtime options, and the
//! rootfs mounts containerd hands over.

use std::path::{Path, PathBuf};

use containerd_shim::api::Options;
use containerd_shim::protos::api::Mount;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::TtrpcResult;

use crate::service::internal;

/// Where sealrun keeps container state when containerd's runtime options name no `Root`.
pub const DEFAULT_ROOT: &str = "/run/containerd/sealrun";
/// Written into the bundle at Create: the state root, for `delete` after a shim crash.
pub const ROOT_FILE: &str = "sealrun-root";

pub fn runtime_root(options: Option<&Any>, namespace: &str) -> PathBuf {
    let root = options
        .filter(|a| a.type_url.ends_with("containerd.runc.v1.Options"))
        .and_then(|a| Options::parse_from_bytes(&a.value).ok())
        .map(|o| o.root)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_ROOT.to_string());
    Path::new(&root).join(namespace)
}

pub fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> TtrpcResult<()> {
    let target = bundle.join("rootfs");
    for m in mounts {
        containerd_shim::mount::mount_rootfs(
            Some(m.type_.as_str()),
            Some(m.source.as_str()),
            &m.options,
            &target,
        )
        .map_err(|e| internal(format!("mount rootfs {}: {e}", target.display())))?;
    }
    Ok(())
}

/// Unmounts the rootfs containerd's mounts were put on (nothing mounted is fine).
pub fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    while nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}
