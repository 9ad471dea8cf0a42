//! `checkpoint` and `restore`: sealrun has no CRIU support (CRIU cannot dump on the kernels
//! sealrun targets, and a restored image would bypass the create-time checks). Both commands
//! exist so scripts and clients get a clear refusal instead of a usage error, after the same
//! argument checks runc makes first.

use std::path::Path;

use super::{lifecycle, Runtime};
use crate::error::{Error, Result};

/// `checkpoint ID`: the container must exist and run, `--parent-path` must be a relative
/// directory under the image directory (runc's checks and words); then refused.
pub fn checkpoint(
    rt: &Runtime,
    id: &str,
    image_path: Option<&Path>,
    parent_path: Option<&Path>,
) -> Result<()> {
    let state = lifecycle::state(rt, id)?;
    let status = state["status"].as_str().unwrap_or_default();
    if status == "created" || status == "stopped" {
        return Err(Error::WrongState {
            id: id.to_string(),
            status: status.to_string(),
            reason: "container cannot be checkpointed in created or stopped state".into(),
        });
    }
    if let Some(parent) = parent_path {
        if parent.is_absolute() {
            return Err(Error::InvalidArgument(
                "--parent-path must be relative (to --image-path)".into(),
            ));
        }
        let images = image_path.unwrap_or(Path::new("checkpoint"));
        let real = images.join(parent);
        if !real.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "invalid --parent-path: {} is not a directory",
                real.display()
            )));
        }
    }
    Err(unsupported("checkpoint"))
}

/// `restore ID`: the id must be free (runc's check); then refused.
pub fn restore(rt: &Runtime, id: &str) -> Result<()> {
    if lifecycle::state(rt, id).is_ok() {
        return Err(Error::AlreadyExists(id.to_string()));
    }
    Err(unsupported("restore"))
}

/// The refusal of `what` (`checkpoint` or `restore`), also for their `--help`.
pub fn unsupported(what: &str) -> Error {
    Error::Unsupported(format!(
        "{what}: checkpoint/restore is not supported by sealrun (no CRIU support)"
    ))
}
