//! runc-style logging: `--log FILE` and `--log-format text|json`.
//!
//! JSON lines are `{"level":"error","msg":"...","time":"RFC3339"}` (containerd's shim reads the
//! last error line of log.json to tell the user why a container failed); text lines are
//! `time="..." level=error msg="..."`. Each record is one `write(2)` on an `O_APPEND` file, so
//! lines from concurrent commands never interleave.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, RawFd};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The severity of a log record, in increasing order.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Debug (only with `--debug`).
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

impl Level {
    /// Its name in log lines (`debug`, `info`, `warning`, `error`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }

    /// The level named `name` in a log line.
    pub(crate) fn from_name(name: &str) -> Option<Level> {
        [Level::Debug, Level::Info, Level::Warn, Level::Error]
            .into_iter()
            .find(|l| l.name() == name)
    }
}

/// The format of a runtime process's log lines.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// logfmt-like text.
    Text,
    /// One JSON object per line.
    Json,
}

struct Logger {
    /// Behind a lock so that [`set_file`] can give it and [`move_above`] renumber it.
    file: Mutex<Option<File>>,
    format: Format,
    min: Level,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Configure logging once, from the global flags. Without a file, warnings and errors go to
/// stderr (errors are printed by `main` itself, so they are not duplicated there).
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(File::options().append(true).create(true).open(p)?),
        None => None,
    };
    let _ = LOGGER.set(Logger {
        file: Mutex::new(file),
        format,
        min: if debug { Level::Debug } else { Level::Info },
    });
    Ok(())
}

/// Whether records at `level` are written anywhere.
pub fn enabled(level: Level) -> bool {
    LOGGER.get().is_some_and(|l| level >= l.min)
}

/// Whether a log file was given.
pub fn has_file() -> bool {
    LOGGER.get().is_some_and(|l| lock(&l.file).is_some())
}

/// Write one record with extra structured fields.
pub fn record(level: Level, msg: &str, fields: Map<String, Value>) {
    let Some(l) = LOGGER.get() else { return };
    if level < l.min {
        return;
    }
    let line = format_line(l.format, level, msg, fields, &now_rfc3339());
    match &*lock(&l.file) {
        Some(f) => {
            let _ = (&*f).write_all(line.as_bytes());
        }
        None if level >= Level::Warn || l.min == Level::Debug => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

fn format_line(
    format: Format,
    level: Level,
    msg: &str,
    fields: Map<String, Value>,
    time: &str,
) -> String {
    match format {
        Format::Json => {
            let mut obj = Map::new();
            obj.insert("level".into(), json!(level.name()));
            obj.insert("msg".into(), json!(msg));
            obj.insert("time".into(), json!(time));
            for (k, v) in fields {
                obj.entry(k).or_insert(v);
            }
            let mut s = Value::Object(obj).to_string();
            s.push('\n');
            s
        }
        Format::Text => {
            let mut s = format!(
                "time={time:?} level={} msg={}",
                level.name(),
                Value::String(msg.into())
            );
            for (k, v) in fields {
                s.push_str(&format!(" {k}={v}"));
            }
            s.push('\n');
            s
        }
    }
}

/// Renumber the log file's descriptor to `min` or above: for a forked child that is about
/// to fill the numbers below with descriptors it hands on (the helper's `exec` child).
pub(crate) fn move_above(min: RawFd) -> nix::Result<()> {
    let Some(l) = LOGGER.get() else {
        return Ok(());
    };
    let mut f = lock(&l.file);
    if let Some(file) = f.as_ref() {
        *f = Some(File::from(crate::sys::spawn::dup_above(file.as_fd(), min)?));
    }
    Ok(())
}

/// Send the records to `file` from now on (the helper's log, which the library hands it after
/// the process started); the level and format stay as [`init`] set them.
pub(crate) fn set_file(file: File) {
    if let Some(l) = LOGGER.get() {
        *lock(&l.file) = Some(file);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Debug record.
pub fn debug(msg: &str) {
    if enabled(Level::Debug) {
        record(Level::Debug, msg, Map::new());
    }
}

/// Info record.
pub fn info(msg: &str) {
    record(Level::Info, msg, Map::new());
}

/// Warning record.
pub fn warn(msg: &str) {
    record(Level::Warn, msg, Map::new());
}

/// Error record (to the log file only; `main` prints the error line on stderr).
pub fn error(msg: &str) {
    if has_file() {
        record(Level::Error, msg, Map::new());
    }
}

/// The current time as RFC 3339 in UTC with nanoseconds (`2026-11-28T17:38:40.123456789Z`).
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Format seconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_887_520, 0), "2026-11-28T17:38:40.000000000Z");
    }

    #[test]
    fn json_lines_have_level_msg_time() {
        let line = format_line(Format::Json, Level::Error, "boom \"x\"", Map::new(), "T");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "T");
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn text_lines_quote_the_message() {
        let line = format_line(Format::Text, Level::Warn, "a b", Map::new(), "T");
        assert_eq!(line, "time=\"T\" level=warning msg=\"a b\"\n");
    }
}
