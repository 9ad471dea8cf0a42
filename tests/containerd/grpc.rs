//! A minimal unary gRPC client over cleartext HTTP/2 on a unix socket.
//!
//! `ctr` 1.6 has no `task update`, so the test calls containerd's `Tasks.Update` itself. One
//! request, one response: the client sends the HTTP/2 preface, its (empty) SETTINGS, one HEADERS
//! frame written with HPACK literals (no Huffman, no indexing) and one DATA frame, then reads
//! frames until the stream ends, acknowledging the server's SETTINGS and PINGs on the way.
//!
//! A gRPC server answers a successful unary call with a DATA frame holding the response message,
//! and a failed one with trailers only; that difference is how success is told apart here, so the
//! client never needs to decode the server's (Huffman-coded) header blocks.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const STREAM: u32 = 1;

/// Calls `method` (e.g. `/containerd.services.tasks.v1.Tasks/Update`) with the encoded protobuf
/// `message` in containerd namespace `namespace`; returns the encoded response message.
pub fn unary(
    socket: &Path,
    namespace: &str,
    method: &str,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let mut conn =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    // A bound on a broken exchange, not an assertion on speed.
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;

    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("containerd-namespace", namespace),
    ] {
        hpack_literal(&mut block, name, value);
    }
    frame(&mut out, HEADERS, FLAG_END_HEADERS, STREAM, &block);
    let mut body = vec![0u8]; // not compressed
    body.extend_from_slice(
        &u32::try_from(message.len())
            .expect("small message")
            .to_be_bytes(),
    );
    body.extend_from_slice(message);
    frame(&mut out, DATA, FLAG_END_STREAM, STREAM, &body);
    conn.write_all(&out)
        .map_err(|e| format!("send request: {e}"))?;

    let mut data = Vec::new();
    let mut trailers = Vec::new();
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head)
            .map_err(|e| format!("read frame header: {e}"))?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload)
            .map_err(|e| format!("read frame: {e}"))?;
        match kind {
            SETTINGS if flags & FLAG_ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, FLAG_ACK, 0, &[]);
                conn.write_all(&ack).map_err(|e| e.to_string())?;
            }
            PING if flags & FLAG_ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, FLAG_ACK, 0, &payload);
                conn.write_all(&pong).map_err(|e| e.to_string())?;
            }
            GOAWAY => {
                return Err(format!(
                    "server sent GOAWAY: {}",
                    String::from_utf8_lossy(&payload)
                ))
            }
            RST_STREAM if stream == STREAM => {
                return Err(format!("server reset the stream: {payload:?}"))
            }
            DATA if stream == STREAM => {
                data.extend_from_slice(unpad(flags, &payload));
                if flags & FLAG_END_STREAM != 0 {
                    break;
                }
            }
            HEADERS | CONTINUATION if stream == STREAM => {
                trailers = unpad(flags, &payload).to_vec();
                if flags & FLAG_END_STREAM != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    if data.len() < 5 {
        // Trailers-only answer: the call failed. The status text is Huffman-coded; show what
        // can be read of it.
        return Err(format!(
            "containerd answered without a message (call failed); trailers: {}",
            String::from_utf8_lossy(&trailers)
        ));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    data.get(5..5 + len)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "truncated response message".to_string())
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .expect("small frame")
        .to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

fn unpad(flags: u8, payload: &[u8]) -> &[u8] {
    if flags & FLAG_PADDED != 0 && !payload.is_empty() {
        let pad = usize::from(payload[0]);
        &payload[1..payload.len().saturating_sub(pad)]
    } else {
        payload
    }
}

/// HPACK "literal header field without indexing, new name", both strings raw (RFC 7541 6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_string(out, name.as_bytes());
    hpack_string(out, value.as_bytes());
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// HPACK integer with an N-bit prefix (RFC 7541 5.1).
fn hpack_int(out: &mut Vec<u8>, high_bits: u8, prefix: u32, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(high_bits | n as u8);
        return;
    }
    out.push(high_bits | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// Protobuf: appends a length-delimited field (strings, bytes, embedded messages).
pub fn pb_bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    pb_varint(out, u64::from(field << 3 | 2));
    pb_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn pb_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// containerd's `Tasks.Update` with runtime-spec `LinuxResources` given as JSON, the way the
/// containerd client marshals them (`typeurl` packs non-protobuf types as JSON).
pub fn update_task(
    socket: &Path,
    namespace: &str,
    container_id: &str,
    resources_json: &str,
) -> Result<(), String> {
    let mut any = Vec::new();
    pb_bytes(
        &mut any,
        1,
        b"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
    );
    pb_bytes(&mut any, 2, resources_json.as_bytes());
    let mut request = Vec::new();
    pb_bytes(&mut request, 1, container_id.as_bytes());
    pb_bytes(&mut request, 2, &any);
    unary(
        socket,
        namespace,
        "/containerd.services.tasks.v1.Tasks/Update",
        &request,
    )
    .map(drop)
}

#[test]
fn hpack_integers_follow_rfc7541_examples() {
    let mut out = Vec::new();
    hpack_int(&mut out, 0, 5, 10);
    assert_eq!(out, [10]);
    out.clear();
    hpack_int(&mut out, 0, 5, 1337);
    assert_eq!(out, [31, 154, 10]);
}
