//! [`LandlockOptions`]: a container's Landlock settings as values, instead of the
//! `run.sealrun.landlock*` annotations they become.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::landlock::{self, Mode};

/// Landlock settings of a container beyond sealrun's default (everything beneath the root is
/// allowed, nothing outside it): made with [`LandlockOptions::new`] and given to
/// [`ContainerBuilder::landlock`](super::ContainerBuilder::landlock). They become sealrun's
/// `run.sealrun.landlock*` annotations and are checked like them (weakening ones, `Mode::Off`
/// for one, need an operator policy that allows it).
///
/// ```
/// let landlock = sealrun::LandlockOptions::new()
///     .read_only("/etc")
///     .no_exec("/tmp")
///     .tcp_connect([443]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockOptions {
    mode: Option<Mode>,
    read_only: Vec<PathBuf>,
    no_exec: Vec<PathBuf>,
    tcp_bind: Option<Vec<u16>>,
    tcp_connect: Option<Vec<u16>>,
    scope_abstract_unix: Option<bool>,
}

impl LandlockOptions {
    /// sealrun's default: nothing beyond the root's confinement.
    pub fn new() -> Self {
        Self::default()
    }

    /// How hard Landlock is applied ([`Mode::On`] by default; `Enforce` fails the create when
    /// the kernel cannot enforce everything asked for).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Make this absolute container path (and everything beneath) read-only.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only.push(path.into());
        self
    }

    /// Forbid `execve` of anything beneath this absolute container path.
    pub fn no_exec(mut self, path: impl Into<PathBuf>) -> Self {
        self.no_exec.push(path.into());
        self
    }

    /// The only TCP ports the container may `bind(2)` (none: every bind is denied).
    pub fn tcp_bind(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.tcp_bind = Some(ports.into_iter().collect());
        self
    }

    /// The only TCP ports the container may `connect(2)` to (none: every connect is denied).
    pub fn tcp_connect(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.tcp_connect = Some(ports.into_iter().collect());
        self
    }

    /// Scope abstract unix sockets on or off (default: on when the container shares the
    /// host's network namespace).
    pub fn scope_abstract_unix(mut self, on: bool) -> Self {
        self.scope_abstract_unix = Some(on);
        self
    }

    /// Write these settings into `annotations`, replacing the Landlock ones there.
    pub(super) fn apply(&self, annotations: &mut HashMap<String, String>) -> Result<()> {
        let paths = |key: &str, list: &[PathBuf]| -> Result<Option<String>> {
            if list.is_empty() {
                return Ok(None);
            }
            let mut out = Vec::new();
            for p in list {
                let text = p.to_str().filter(|t| !t.contains(',')).ok_or_else(|| {
                    Error::config(
                        landlock::annotation_field(key),
                        format!(
                            "{}: not a path a comma-separated list can hold",
                            p.display()
                        ),
                    )
                })?;
                out.push(text.to_string());
            }
            Ok(Some(out.join(",")))
        };
        let ports = |list: &Option<Vec<u16>>| {
            list.as_ref()
                .map(|l| l.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
        };
        let values = [
            (
                landlock::ANNOTATION_MODE,
                self.mode.map(|m| m.as_str().to_string()),
            ),
            (
                landlock::ANNOTATION_READ_ONLY,
                paths(landlock::ANNOTATION_READ_ONLY, &self.read_only)?,
            ),
            (
                landlock::ANNOTATION_NO_EXEC,
                paths(landlock::ANNOTATION_NO_EXEC, &self.no_exec)?,
            ),
            (landlock::ANNOTATION_TCP_BIND, ports(&self.tcp_bind)),
            (landlock::ANNOTATION_TCP_CONNECT, ports(&self.tcp_connect)),
            (
                landlock::ANNOTATION_SCOPE_ABSTRACT_UNIX,
                self.scope_abstract_unix
                    .map(|on| if on { "on" } else { "off" }.to_string()),
            ),
        ];
        for key in landlock::ANNOTATIONS {
            annotations.remove(*key);
        }
        for (key, value) in values {
            if let Some(v) = value {
                annotations.insert(key.to_string(), v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_the_annotations() {
        let mut ann = HashMap::from([
            (landlock::ANNOTATION_NO_EXEC.to_string(), "/old".to_string()),
            ("other".to_string(), "kept".to_string()),
        ]);
        LandlockOptions::new()
            .mode(Mode::Enforce)
            .read_only("/etc")
            .read_only("/usr")
            .tcp_bind([])
            .tcp_connect([80, 443])
            .scope_abstract_unix(true)
            .apply(&mut ann)
            .unwrap();
        let get = |k: &str| ann.get(k).map(String::as_str);
        assert_eq!(get(landlock::ANNOTATION_MODE), Some("enforce"));
        assert_eq!(get(landlock::ANNOTATION_READ_ONLY), Some("/etc,/usr"));
        assert_eq!(get(landlock::ANNOTATION_NO_EXEC), None, "replaced");
        assert_eq!(get(landlock::ANNOTATION_TCP_BIND), Some(""));
        assert_eq!(get(landlock::ANNOTATION_TCP_CONNECT), Some("80,443"));
        assert_eq!(get(landlock::ANNOTATION_SCOPE_ABSTRACT_UNIX), Some("on"));
        assert_eq!(get("other"), Some("kept"));
        let e = LandlockOptions::new()
            .no_exec("/a,b")
            .apply(&mut ann)
            .unwrap_err()
            .to_string();
        assert!(e.contains(landlock::ANNOTATION_NO_EXEC), "{e}");
    }
}
