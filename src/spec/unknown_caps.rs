//! Capability names the runtime does not know, in a config or a process.json.
//!
//! The runtime-spec says a runtime MUST error on a capability it cannot map, and sealrun does
//! by default (the parse error names the field). runc 1.1 instead ignores such names with a
//! warning, and configs written for it sometimes carry names from newer kernels or typos
//! nobody noticed; an operator policy may ask for runc's leniency
//! ([`UnknownCapabilities::Warn`]). Then each unknown name is dropped from every set it
//! appears in, reported once with the fields it was in, and the known names still apply.
//! Deciding this is pure: bytes in, the parsed value and the dropped names out.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::policy::UnknownCapabilities;

/// The five sets of a `capabilities` object, in the order messages list them.
const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
];

/// An unknown capability name dropped under [`UnknownCapabilities::Warn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredCapability {
    /// The name as the config spells it.
    pub name: String,
    /// Every field it was dropped from (`process.capabilities.bounding`).
    pub fields: Vec<String>,
}

impl IgnoredCapability {
    /// The warning line: names the fields and the name, as runc's warning names the name.
    pub fn warning(&self) -> String {
        format!(
            "{}: unknown capability {:?} ignored (operator policy unknownCapabilities: \"warn\")",
            self.fields.join(", "),
            self.name
        )
    }
}

/// Parse `raw` (a config when `caps_at` is `["process", "capabilities"]`, a process.json when
/// it is `["capabilities"]`). An unknown capability name is the parse error naming its field
/// under [`UnknownCapabilities::Refuse`]; under [`UnknownCapabilities::Warn`] it is dropped
/// and returned. Any other error stays an error. A config without unknown names costs one
/// parse, as before.
pub fn parse_with<T: DeserializeOwned>(
    raw: &[u8],
    what: &str,
    caps_at: &[&str],
    mode: UnknownCapabilities,
) -> Result<(T, Vec<IgnoredCapability>)> {
    let first = match super::parse_json::<T>(raw, what) {
        Ok(v) => return Ok((v, Vec::new())),
        Err(e) => e,
    };
    if mode == UnknownCapabilities::Refuse {
        return Err(first);
    }
    let Ok(mut doc) = serde_json::from_slice::<Value>(raw) else {
        return Err(first);
    };
    let ignored = drop_unknown(&mut doc, caps_at);
    if ignored.is_empty() {
        return Err(first);
    }
    // Serialising a Value parsed from valid JSON cannot fail; keep the first error if it did.
    let Ok(cleaned) = serde_json::to_vec(&doc) else {
        return Err(first);
    };
    let value = super::parse_json::<T>(&cleaned, what)?;
    Ok((value, ignored))
}

/// Remove every string the spec's capability type refuses from the five sets at `caps_at`;
/// return them, each once, with the fields it was in.
fn drop_unknown(doc: &mut Value, caps_at: &[&str]) -> Vec<IgnoredCapability> {
    let mut out: Vec<IgnoredCapability> = Vec::new();
    let mut caps = Some(&mut *doc);
    for key in caps_at {
        caps = caps.and_then(|v| v.get_mut(*key));
    }
    let Some(Value::Object(caps)) = caps else {
        return out;
    };
    let prefix = caps_at.join(".");
    for set in SETS {
        let Some(Value::Array(names)) = caps.get_mut(set) else {
            continue;
        };
        let field = format!("{prefix}.{set}");
        names.retain(|n| {
            let Value::String(name) = n else {
                // Not a name at all: left for the parser to report.
                return true;
            };
            if known(name) {
                return true;
            }
            match out.iter_mut().find(|i| i.name == *name) {
                Some(i) if !i.fields.contains(&field) => i.fields.push(field.clone()),
                Some(_) => {}
                None => out.push(IgnoredCapability {
                    name: name.clone(),
                    fields: vec![field.clone()],
                }),
            }
            false
        });
    }
    out
}

/// Whether the spec's capability type accepts `name` (the same test as the real parse).
fn known(name: &str) -> bool {
    serde_json::from_value::<oci_spec::runtime::Capability>(Value::String(name.to_string())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, Process, Spec};

    const CONFIG: &str = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
        "capabilities":{"bounding":["CAP_KILL","CAP_NOPE","CAP_CHOWN"],
        "effective":["CAP_NOPE","CAP_KILL"],"permitted":["CAP_KILL","CAP_ALSO_NOT"]}}}"#;
    const AT: [&str; 2] = ["process", "capabilities"];

    #[test]
    fn refused_by_default_naming_the_field() {
        let e = parse_with::<Spec>(CONFIG.as_bytes(), "config.json", &AT, Default::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("process.capabilities.bounding"), "{e}");
        assert!(e.contains("CAP_NOPE"), "{e}");
    }

    #[test]
    fn warn_drops_each_name_from_every_set_once() {
        let (spec, ignored) = parse_with::<Spec>(
            CONFIG.as_bytes(),
            "config.json",
            &AT,
            UnknownCapabilities::Warn,
        )
        .unwrap();
        assert_eq!(
            ignored,
            [
                IgnoredCapability {
                    name: "CAP_NOPE".into(),
                    fields: vec![
                        "process.capabilities.bounding".into(),
                        "process.capabilities.effective".into()
                    ],
                },
                IgnoredCapability {
                    name: "CAP_ALSO_NOT".into(),
                    fields: vec!["process.capabilities.permitted".into()],
                },
            ]
        );
        let w = ignored[0].warning();
        assert!(
            w.starts_with("process.capabilities.bounding, process.capabilities.effective:")
                && w.contains("\"CAP_NOPE\""),
            "{w}"
        );
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        let bounding = caps.bounding().clone().unwrap();
        assert!(bounding.contains(&Capability::Kill) && bounding.contains(&Capability::Chown));
        assert_eq!(bounding.len(), 2);
        assert_eq!(caps.effective().clone().unwrap().len(), 1);
    }

    #[test]
    fn warn_keeps_other_errors() {
        // A wrong type elsewhere is still an error, with or without unknown names.
        let bad = CONFIG.replace(r#""cwd":"/""#, r#""cwd":"/","args":"sh""#);
        let e = parse_with::<Spec>(
            bad.as_bytes(),
            "config.json",
            &AT,
            UnknownCapabilities::Warn,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("process.args"), "{e}");
        // A capability that is not a string is not a name to drop.
        let num = CONFIG.replace(r#""CAP_CHOWN""#, "7");
        let e = parse_with::<Spec>(
            num.as_bytes(),
            "config.json",
            &AT,
            UnknownCapabilities::Warn,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("process.capabilities.bounding"), "{e}");
    }

    #[test]
    fn a_process_json_is_handled_the_same() {
        let raw = br#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],
            "capabilities":{"ambient":["CAP_NOPE"],"bounding":["CAP_KILL"]}}"#;
        assert!(
            parse_with::<Process>(raw, "process.json", &["capabilities"], Default::default())
                .is_err()
        );
        let (p, ignored) = parse_with::<Process>(
            raw,
            "process.json",
            &["capabilities"],
            UnknownCapabilities::Warn,
        )
        .unwrap();
        assert_eq!(ignored[0].fields, ["capabilities.ambient"]);
        let caps = p.capabilities().clone().unwrap();
        assert!(caps.ambient().clone().unwrap_or_default().is_empty());
    }
}
