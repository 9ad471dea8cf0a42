//! PURE: load a bundle's config.json, validate it, and resolve everything into a [`Plan`].
//!
//! Nothing here changes the system. Every error names the JSON path of the offending field so
//! a user can fix the config from the message alone.

mod default;
mod devices;
mod exec;
mod host;
pub mod idmap;
mod json_path;
mod mounts;
pub mod namespaces;
pub(crate) mod plan;
mod process;
pub mod rootless;
mod ser;
mod unknown_caps;

use std::path::Path;

use oci_spec::runtime::Spec;
use serde::de::DeserializeOwned;

use crate::error::{Context, Error, Result};

pub use default::{default_config, write_default, DEFAULT_CAPS};
pub use devices::{DeviceNode, DEFAULT_DEVICES, DEFAULT_SYMLINKS};
pub use exec::{exec_plan, process_from_json, process_from_overrides, ExecOverrides, ExecPlan};
pub use host::{HostFacts, NsId};
pub use mounts::{
    parse_mount_options, MountKind, MountOptions, MountPlan, KNOWN_OPTIONS as KNOWN_MOUNT_OPTIONS,
};
pub use namespaces::{Namespaces, NsKind};
pub use plan::{plan, CreateOptions, IdMap, Landlock, Layers, Plan};
pub use process::{parse_capabilities, plan_process, CapSets, ProcessPlan, Scheduler, WinSize};
pub use unknown_caps::{parse_with, IgnoredCapability};

/// Read and parse `<bundle>/config.json`. Returns the spec and the raw bytes (kept verbatim in
/// the state directory so later commands see exactly what `create` saw).
pub fn load_bundle(bundle: &Path) -> Result<(Spec, Vec<u8>)> {
    let path = bundle.join("config.json");
    let raw = std::fs::read(&path).op_path("read config", &path)?;
    let spec = parse_json::<Spec>(&raw, "config.json")?;
    Ok((spec, raw))
}

/// Read and parse `<bundle>/config.json` as `create` does under `policy`: unknown capability
/// names are refused, or dropped and returned when the policy says `unknownCapabilities:
/// "warn"` (see [`parse_with`]).
pub fn load_bundle_with(
    bundle: &Path,
    policy: &crate::policy::Policy,
) -> Result<(Spec, Vec<IgnoredCapability>)> {
    let path = bundle.join("config.json");
    let raw = std::fs::read(&path).op_path("read config", &path)?;
    parse_with::<Spec>(
        &raw,
        "config.json",
        &["process", "capabilities"],
        policy.unknown_capabilities,
    )
}

/// Parse JSON into `T`. On failure the error names the field (`process.capabilities.
/// bounding[2]: unknown variant ...`), found from the error's position; the fast path pays
/// nothing.
pub fn parse_json<T: DeserializeOwned>(raw: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice::<T>(raw).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            return Error::config(what, format!("malformed JSON in {what}: {e}"));
        }
        let path = json_path::path_at(raw, json_path::offset_of(raw, e.line(), e.column()));
        let field = if path.is_empty() {
            what.to_string()
        } else {
            path
        };
        Error::config(field, strip_position(&e.to_string()))
    })
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
        assert!(!msg.contains(" at line "), "{msg}");
    }

    #[test]
    fn exec_cpu_affinity_is_still_checked() {
        // oci-spec checks this field with a regex (regex-lite through crates/regex).
        let cfg = |v: &str| {
            format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","user":{{"uid":0,"gid":0}},
                "execCPUAffinity":{{"initial":"{v}"}}}}}}"#
            )
        };
        assert!(parse_json::<Spec>(cfg("0-3,7").as_bytes(), "config.json").is_ok());
        let msg = parse_json::<Spec>(cfg("0-3,x").as_bytes(), "config.json")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("process.execCPUAffinity"), "{msg}");
    }

    #[test]
    fn missing_field_names_the_object() {
        let raw = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "mounts":[{"destination":"/a"},{"type":"tmpfs"}]}"#;
        let msg = parse_json::<Spec>(raw, "config.json")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("mounts[1]"), "{msg}");
        assert!(msg.contains("destination"), "{msg}");
    }
}
