//! Where the helpers' log records go: a file, or a function of the embedder's.
//!
//! Every helper gets one descriptor for its log (`--log /proc/self/fd/N`, JSON lines): the
//! file the [`Sandbox`](super::Sandbox) opened once, `/dev/null`, or the write end of one pipe
//! per sandbox whose read end a thread of the library turns into [`LogRecord`]s for the
//! embedder's function. Each record is one `write(2)` (atomic on a pipe up to `PIPE_BUF`), so
//! the lines of concurrent helpers do not interleave.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Context, Result};
use crate::log::Level;

/// One log record of a container's helper, as [`SandboxBuilder::log_sink`](super::SandboxBuilder::log_sink)
/// delivers it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Its severity.
    pub level: Level,
    /// The message (`"container protections"` for an audit record, an error's text, ...).
    pub message: String,
    /// When it was written (RFC 3339, UTC).
    pub time: String,
    /// Its structured fields: an audit record's (`"id"`, `"seccomp"`, `"landlock"`, ...),
    /// empty for plain messages.
    pub fields: BTreeMap<String, Value>,
}

impl LogRecord {
    /// Decode one JSON log line; `None` for anything else.
    fn parse(line: &[u8]) -> Option<LogRecord> {
        let Value::Object(mut obj) = serde_json::from_slice(line).ok()? else {
            return None;
        };
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let level = Level::from_name(&text(obj.remove("level"))?)?;
        let message = text(obj.remove("msg")).unwrap_or_default();
        let time = text(obj.remove("time")).unwrap_or_default();
        Some(LogRecord {
            level,
            message,
            time,
            fields: obj.into_iter().collect(),
        })
    }
}

/// The embedder's log function.
pub(crate) type SinkFn = Arc<dyn Fn(&LogRecord) + Send + Sync>;

/// A pipe whose records a new thread hands to `sink`; the write end, for the helpers. The
/// thread ends when every copy of the write end is closed (the sandbox, its containers and
/// their helpers are gone). A panicking `sink` loses that record only.
pub(crate) fn spawn_reader(sink: SinkFn) -> Result<OwnedFd> {
    let (read, write) = crate::sys::spawn::pipe().op("pipe")?;
    std::thread::Builder::new()
        .name("sealrun-log".into())
        .spawn(move || {
            for line in BufReader::new(File::from(read)).split(b'\n') {
                let Ok(line) = line else { break };
                if let Some(record) = LogRecord::parse(&line) {
                    let sink = &sink;
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(&record)));
                }
            }
        })
        .op("spawn the log thread")?;
    Ok(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_become_records() {
        let r = LogRecord::parse(
            br#"{"level":"info","msg":"container protections","time":"T","id":"c1"}"#,
        )
        .expect("record");
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.message, "container protections");
        assert_eq!(r.time, "T");
        assert_eq!(r.fields.get("id"), Some(&Value::from("c1")));
        assert!(LogRecord::parse(br#"{"level":"warning","msg":"w"}"#).is_some());
        assert!(LogRecord::parse(b"time=\"T\" level=info msg=\"text\"").is_none());
        assert!(LogRecord::parse(br#"{"level":"loud","msg":"x"}"#).is_none());
    }
}
