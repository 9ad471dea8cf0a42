//! PURE: load a bundle's config.json, validate it, and resolve everything into a [`Plan`].
//!
//! Nothing here changes the system. Every error names the JSON path of the offending field so
//! a user can fix the config from the message alone.

mod default;
mod devices;
mod exec;
mod mounts;
mod plan;
mod process;

use std::path::Path;

use oci_spec::runtime::Spec;
use serde::de::DeserializeOwned;

use crate::error::{Context, Error, Result};

pub use default::{default_config, write_default, DEFAULT_CAPS};
pub use devices::{DeviceNode, DEFAULT_DEVICES, DEFAULT_SYMLINKS};
pub use exec::{exec_plan, process_from_json, process_from_overrides, ExecOverrides, ExecPlan};
pub use mounts::{
    parse_mount_options, MountKind, MountOptions, MountPlan, KNOWN_OPTIONS as KNOWN_MOUNT_OPTIONS,
};
pub use plan::{plan, CreateOptions, IdMap, Layers, Plan};
pub use process::{parse_capabilities, plan_process, CapSets, ProcessPlan};

/// Read and parse `<bundle>/config.json`. Returns the spec and the raw bytes (kept verbatim in
/// the state directory so later commands see exactly what `create` saw).
pub fn load_bundle(bundle: &Path) -> Result<(Spec, Vec<u8>)> {
    let path = bundle.join("config.json");
    let raw = std::fs::read(&path).op_path("read config", &path)?;
    let spec = parse_json::<Spec>(&raw, "config.json")?;
    Ok((spec, raw))
}

/// Parse JSON into `T`. On failure, parse again while tracking the path so the error names the
/// field (`process.capabilities.bounding[2]: unknown variant ...`); the fast path pays nothing.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8], what: &str) -> Result<T> {
    match serde_json::from_slice::<T>(raw) {
        Ok(v) => Ok(v),
        Err(plain) => {
            let de = &mut serde_json::Deserializer::from_slice(raw);
            match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    let field = if path.is_empty() || path == "." {
                        what.to_string()
                    } else {
                        path
                    };
                    let reason = if inner.is_syntax() || inner.is_eof() {
                        format!("malformed JSON in {what}: {plain}")
                    } else {
                        strip_position(&inner.to_string())
                    };
                    Err(Error::config(field, reason))
                }
            }
        }
    }
}

/// serde_json appends " at line X column Y"; the field path says more, keep the message short.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_the_file() {
        let err = parse_json::<Spec>(b"{ not json", "config.json").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("config.json"), "{msg}");
        assert!(msg.contains("malformed JSON"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let raw =
            br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"args":"sh"}}"#;
        let err = parse_json::<Spec>(raw, "config.json").unwrap_err();
        assert!(err.to_string().contains("process.args"), "{err}");
    }

    #[test]
    fn unknown_capability_names_the_field() {
        let raw = br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_KILL","CAP_NOPE"]}}}"#;
        let err = parse_json::<Spec>(raw, "config.json").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("process.capabilities.bounding"), "{msg}");
        assert!(msg.contains("CAP_NOPE"), "{msg}");
    }
}
