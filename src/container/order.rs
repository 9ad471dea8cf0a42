//! JSON objects printed with runc's field order. serde_json's `Value` keeps keys sorted, but
//! clients (and runc's own tests) match the text of `state`, `list --format json` and `events`
//! as runc prints it, with its struct field order.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// runc's `state` / `list` object.
pub const STATE_ORDER: &[&str] = &[
    "ociVersion",
    "id",
    "pid",
    "status",
    "bundle",
    "rootfs",
    "created",
    "annotations",
    "owner",
];

/// runc's `events` object (`stats` and `oom` events).
pub const EVENT_ORDER: &[&str] = &["type", "id", "data"];

/// An object serialized with the keys of `order` first, in that order, then the others sorted;
/// anything that is not an object serializes as it is.
#[derive(Debug, Clone, Copy)]
pub struct Ordered<'a>(pub &'a Value, pub &'static [&'static str]);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(s);
        };
        let mut m = s.serialize_map(Some(map.len()))?;
        for k in self.1 {
            if let Some(v) = map.get(*k) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in map {
            if !self.1.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl std::fmt::Display for Ordered<'_> {
    /// Compact JSON, one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_in_runcs_order() {
        let v = json!({"data": {"b": 1, "a": 2}, "id": "c1", "type": "stats", "zz": 0});
        assert_eq!(
            Ordered(&v, EVENT_ORDER).to_string(),
            r#"{"type":"stats","id":"c1","data":{"a":2,"b":1},"zz":0}"#
        );
        let v = json!({"owner": "", "id": "c1", "ociVersion": "1.2.0", "status": "running"});
        assert_eq!(
            Ordered(&v, STATE_ORDER).to_string(),
            r#"{"ociVersion":"1.2.0","id":"c1","status":"running","owner":""}"#
        );
    }
}
