//! The `run.sealrun.landlock*` annotations: names and pure parsers.
//!
//! Every error names the annotation as its field (`annotations["run.sealrun.landlock.tcp-bind"]`)
//! so the user sees which key to fix. Unknown keys under the Landlock prefix are errors too: a
//! misspelt restriction that is silently ignored would be a hole nobody notices.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `on` (default) | `off` | `enforce`.
pub const MODE: &str = "run.sealrun.landlock";
/// Comma-separated absolute container paths that become read-only.
pub const READ_ONLY: &str = "run.sealrun.landlock.read-only";
/// Comma-separated absolute container paths beneath which no file may be `execve`d.
pub const NO_EXEC: &str = "run.sealrun.landlock.no-exec";
/// TCP ports the container may `bind(2)`; when given, every other port is denied.
pub const TCP_BIND: &str = "run.sealrun.landlock.tcp-bind";
/// TCP ports the container may `connect(2)` to; when given, every other port is denied.
pub const TCP_CONNECT: &str = "run.sealrun.landlock.tcp-connect";
/// `auto` (default: scoped when sharing the host network namespace) | `on` | `off`.
pub const SCOPE_ABSTRACT_UNIX: &str = "run.sealrun.landlock.scope-abstract-unix";

/// Every annotation this module reads, for `features` and the docs.
pub const ALL: &[&str] = &[
    MODE,
    READ_ONLY,
    NO_EXEC,
    TCP_BIND,
    TCP_CONNECT,
    SCOPE_ABSTRACT_UNIX,
];

/// Upper bound on the ports of one list: each port is one rule and one system call at start.
pub const MAX_PORTS: usize = 1024;

/// How hard Landlock is applied (`run.sealrun.landlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Not applied at all.
    Off,
    /// Best effort: what the kernel supports; filesystem rules skipped for CAP_SYS_ADMIN.
    #[default]
    On,
    /// Required: filesystem rules even with CAP_SYS_ADMIN, and the container fails to start if
    /// the kernel cannot enforce everything asked for.
    Enforce,
}

impl Mode {
    /// The annotation value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "on",
            Mode::Enforce => "enforce",
        }
    }
}

/// A layer an annotation can weaken below sealrun's default. Without an operator policy that
/// allows it (`annotationsMayWeaken`), a container asking for it is refused at `create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weakening {
    /// `run.sealrun.landlock=off`: no Landlock at all.
    Landlock,
    /// `run.sealrun.landlock.scope-abstract-unix=off` in the host's network namespace: the
    /// host's abstract unix sockets become reachable.
    AbstractUnixScope,
}

impl Weakening {
    /// Every weakening, for docs and `check`.
    pub const ALL: &'static [Weakening] = &[Weakening::Landlock, Weakening::AbstractUnixScope];

    /// The name used in the policy file (`landlock`, `abstract-unix-scope`).
    pub fn name(self) -> &'static str {
        match self {
            Weakening::Landlock => "landlock",
            Weakening::AbstractUnixScope => "abstract-unix-scope",
        }
    }

    /// The annotation that asks for it.
    pub fn annotation(self) -> &'static str {
        match self {
            Weakening::Landlock => MODE,
            Weakening::AbstractUnixScope => SCOPE_ABSTRACT_UNIX,
        }
    }
}

/// The annotations, parsed and validated but not yet combined with the context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// `run.sealrun.landlock`.
    pub mode: Mode,
    /// Normalised absolute paths, sorted, deduplicated.
    pub read_only: Vec<String>,
    /// Normalised absolute paths, sorted, deduplicated.
    pub no_exec: Vec<String>,
    /// `None` when the annotation is absent; `Some(empty)` denies every bind.
    pub tcp_bind: Option<Vec<u16>>,
    /// `None` when the annotation is absent; `Some(empty)` denies every connect.
    pub tcp_connect: Option<Vec<u16>>,
    /// `None` for `auto`.
    pub scope_abstract_unix: Option<bool>,
}

/// The error field for an annotation key.
pub fn field(key: &str) -> String {
    format!("annotations[\"{key}\"]")
}

/// Parse every `run.sealrun.landlock*` annotation; other annotations are ignored.
pub fn parse(annotations: &HashMap<String, String>) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    // Visit keys in a fixed order so the first error reported does not depend on hashing.
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| *k == MODE || k.starts_with("run.sealrun.landlock."))
        .collect();
    keys.sort();
    for key in keys {
        let value = annotations[key].as_str();
        match key.as_str() {
            MODE => parsed.mode = parse_mode(value)?,
            READ_ONLY => parsed.read_only = parse_paths(key, value)?,
            NO_EXEC => parsed.no_exec = parse_paths(key, value)?,
            TCP_BIND => parsed.tcp_bind = Some(parse_ports(key, value)?),
            TCP_CONNECT => parsed.tcp_connect = Some(parse_ports(key, value)?),
            SCOPE_ABSTRACT_UNIX => parsed.scope_abstract_unix = parse_switch(key, value)?,
            _ => {
                return Err(Error::config(
                    field(key),
                    format!("unknown Landlock annotation (known: {})", ALL.join(", ")),
                ))
            }
        }
    }
    Ok(parsed)
}

fn parse_mode(value: &str) -> Result<Mode> {
    match value.trim() {
        "on" => Ok(Mode::On),
        "off" => Ok(Mode::Off),
        "enforce" => Ok(Mode::Enforce),
        other => Err(Error::config(
            field(MODE),
            format!("{other:?} is not one of on, off, enforce"),
        )),
    }
}

fn parse_switch(key: &str, value: &str) -> Result<Option<bool>> {
    match value.trim() {
        "auto" => Ok(None),
        "on" => Ok(Some(true)),
        "off" => Ok(Some(false)),
        other => Err(Error::config(
            field(key),
            format!("{other:?} is not one of auto, on, off"),
        )),
    }
}

/// Split a comma-separated list; an all-blank value is the empty list, a blank item an error.
fn items<'a>(key: &str, value: &'a str) -> Result<Vec<&'a str>> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(str::trim)
        .map(|item| {
            if item.is_empty() {
                Err(Error::config(
                    field(key),
                    "empty item in comma-separated list",
                ))
            } else {
                Ok(item)
            }
        })
        .collect()
}

/// Absolute container paths; `.` and repeated slashes are normalised away, `..` is refused
/// (symlinks are resolved inside the root when the rules are built, never here).
pub fn parse_paths(key: &str, value: &str) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for item in items(key, value)? {
        if !item.starts_with('/') {
            return Err(Error::config(
                field(key),
                format!("{item:?} is not an absolute path"),
            ));
        }
        if item.contains('\0') {
            return Err(Error::config(
                field(key),
                format!("{item:?} contains a NUL byte"),
            ));
        }
        let mut normal = String::new();
        for comp in item.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    return Err(Error::config(
                        field(key),
                        format!("{item:?} contains \"..\""),
                    ))
                }
                name => {
                    normal.push('/');
                    normal.push_str(name);
                }
            }
        }
        if normal.is_empty() {
            normal.push('/');
        }
        out.insert(normal);
    }
    Ok(out.into_iter().collect())
}

/// Ports and inclusive ranges (`80,443,8000-8099`); blank or `none` is the empty list.
pub fn parse_ports(key: &str, value: &str) -> Result<Vec<u16>> {
    if value.trim() == "none" {
        return Ok(Vec::new());
    }
    let port = |s: &str| -> Result<u16> {
        s.trim()
            .parse::<u16>()
            .map_err(|_| Error::config(field(key), format!("{s:?} is not a port number (0-65535)")))
    };
    let mut out = BTreeSet::new();
    for item in items(key, value)? {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(item)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(Error::config(
                field(key),
                format!("range {item:?} is reversed"),
            ));
        }
        if usize::from(hi - lo) >= MAX_PORTS {
            return Err(Error::config(
                field(key),
                format!("more than {MAX_PORTS} ports"),
            ));
        }
        out.extend(lo..=hi);
        if out.len() > MAX_PORTS {
            return Err(Error::config(
                field(key),
                format!("more than {MAX_PORTS} ports"),
            ));
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err_field(e: Error) -> String {
        match e {
            Error::InvalidConfig { field, .. } => field,
            other => panic!("not a config error: {other}"),
        }
    }

    #[test]
    fn absent_annotations_mean_defaults() {
        let p = parse(&ann(&[("org.example", "x"), ("run.sealrun.other", "y")])).unwrap();
        assert_eq!(p, Parsed::default());
        assert_eq!(p.mode, Mode::On);
    }

    #[test]
    fn modes() {
        for (v, m) in [
            ("on", Mode::On),
            ("off", Mode::Off),
            (" enforce ", Mode::Enforce),
        ] {
            assert_eq!(parse(&ann(&[(MODE, v)])).unwrap().mode, m);
        }
        for bad in ["", "ON", "true", "1", "disabled"] {
            let e = parse(&ann(&[(MODE, bad)])).unwrap_err();
            assert_eq!(err_field(e), "annotations[\"run.sealrun.landlock\"]");
        }
    }

    #[test]
    fn unknown_key_under_prefix_is_an_error() {
        let e = parse(&ann(&[("run.sealrun.landlock.readonly", "/etc")])).unwrap_err();
        assert!(e.to_string().contains("unknown Landlock annotation"), "{e}");
        assert_eq!(
            err_field(e),
            "annotations[\"run.sealrun.landlock.readonly\"]"
        );
        // A sibling prefix is not ours.
        assert!(parse(&ann(&[("run.sealrun.landlocker", "x")])).is_ok());
    }

    #[test]
    fn paths_are_normalised_sorted_and_deduplicated() {
        let p = parse_paths(READ_ONLY, " /etc/ , //usr/./lib,/etc,/").unwrap();
        assert_eq!(p, vec!["/", "/etc", "/usr/lib"]);
        assert!(parse_paths(READ_ONLY, "").unwrap().is_empty());
        assert!(parse_paths(READ_ONLY, "  ").unwrap().is_empty());
    }

    #[test]
    fn bad_paths_name_the_annotation() {
        for bad in ["etc", "/etc,,/usr", "/etc/../root", "/a,b", "/a\0b"] {
            let e = parse(&ann(&[(NO_EXEC, bad)])).unwrap_err();
            assert_eq!(
                err_field(e),
                "annotations[\"run.sealrun.landlock.no-exec\"]",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(
            parse_ports(TCP_BIND, "443, 80,8000-8002,80").unwrap(),
            vec![80, 443, 8000, 8001, 8002]
        );
        assert_eq!(parse_ports(TCP_BIND, "0").unwrap(), vec![0]);
        assert_eq!(parse_ports(TCP_BIND, "65535").unwrap(), vec![65535]);
        assert!(parse_ports(TCP_BIND, "").unwrap().is_empty());
        assert!(parse_ports(TCP_BIND, "none").unwrap().is_empty());
        let p = parse(&ann(&[(TCP_CONNECT, "")])).unwrap();
        assert_eq!(p.tcp_connect, Some(vec![]));
        assert_eq!(p.tcp_bind, None);
    }

    #[test]
    fn bad_ports_name_the_annotation() {
        for bad in [
            "65536",
            "-1",
            "http",
            "80,",
            "90-80",
            "1-2000",
            "1-1000,2000-2100",
        ] {
            let e = parse(&ann(&[(TCP_BIND, bad)])).unwrap_err();
            assert_eq!(
                err_field(e),
                "annotations[\"run.sealrun.landlock.tcp-bind\"]",
                "{bad:?}"
            );
        }
        assert_eq!(parse_ports(TCP_BIND, "1-1024").unwrap().len(), 1024);
    }

    #[test]
    fn scope_switch() {
        let get = |v: &str| parse(&ann(&[(SCOPE_ABSTRACT_UNIX, v)])).map(|p| p.scope_abstract_unix);
        assert_eq!(get("auto").unwrap(), None);
        assert_eq!(get("on").unwrap(), Some(true));
        assert_eq!(get("off").unwrap(), Some(false));
        assert!(get("yes").is_err());
    }
}
