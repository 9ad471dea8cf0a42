//! Naming the field of a JSON error: the path (`process.capabilities.bounding[2]`) of the value
//! serde_json was reading when it failed, found by scanning the text up to the error's
//! position. A typed parse stays a single pass; only a failed parse pays for the scan.

/// Byte offset of serde_json's `(line, column)`: the column counts the bytes read on that line.
pub(super) fn offset_of(raw: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match raw[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start += i + 1,
            None => return raw.len(),
        }
    }
    (start + column).min(raw.len())
}

enum Frame {
    /// An object and the key whose value is being read (none before the first key).
    Object(Option<String>),
    /// An array and the index of the element being read.
    Array(usize),
}

/// The path of the value being read after the first `offset` bytes of `raw`, in the form
/// `a.b[3].c` (empty at the top level).
pub(super) fn path_at(raw: &[u8], offset: usize) -> String {
    let end = offset.min(raw.len());
    let mut stack: Vec<Frame> = Vec::new();
    // In an object: the next string is a key (after `{` or `,`), not a value (after `:`).
    let mut key_next = false;
    let mut i = 0;
    while i < end {
        match raw[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    i += if raw[i] == b'\\' { 2 } else { 1 };
                }
                if let (Some(Frame::Object(key)), true) = (stack.last_mut(), key_next) {
                    let quoted = &raw[start..(i + 1).min(raw.len())];
                    *key = Some(
                        serde_json::from_slice::<String>(quoted)
                            .unwrap_or_else(|_| String::from_utf8_lossy(quoted).into_owned()),
                    );
                    key_next = false;
                }
            }
            b'{' => {
                stack.push(Frame::Object(None));
                key_next = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
                key_next = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object(_)) => key_next = true,
                None => {}
            },
            b':' => key_next = false,
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, marker: &str) -> String {
        let off = text.find(marker).expect("marker") + marker.len();
        path_at(text.as_bytes(), off)
    }

    #[test]
    fn keys_indices_and_nesting() {
        let t = r#"{"a": {"b": [1, {"c": "x"}, 3]}, "d": "e"}"#;
        assert_eq!(at(t, r#""c": "x""#), "a.b[1].c");
        assert_eq!(at(t, "3"), "a.b[2]");
        assert_eq!(at(t, r#""d": "e""#), "d");
        assert_eq!(at(t, r#"[1, {"c": "x"}"#), "a.b[1]");
        assert_eq!(at(t, r#""c": "x"}, 3]}"#), "a");
        assert_eq!(path_at(t.as_bytes(), 0), "");
    }

    #[test]
    fn strings_with_brackets_quotes_and_escapes_do_not_confuse_it() {
        let t = r#"{"k\"[{": "v,]}:", "n": [ "a\\", "b" ]}"#;
        assert_eq!(at(t, r#""b""#), "n[1]");
        assert_eq!(at(t, r#""v,]}:""#), r#"k"[{"#);
    }

    #[test]
    fn line_and_column_map_to_bytes_read() {
        let t = b"{\n  \"a\": 1,\n  \"b\": x\n}";
        let err = serde_json::from_slice::<serde_json::Value>(t).unwrap_err();
        let off = offset_of(t, err.line(), err.column());
        assert_eq!(&t[off - 1..off], b"x");
        assert_eq!(offset_of(t, 9, 9), t.len());
    }
}
