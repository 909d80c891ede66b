//! Writes the seed corpora of the fuzz targets in `fuzz/` from the golden vectors
//! (`tests/golden/vectors.json`): `fuzz_seeds <dir>` fills `<dir>/<target>/` with
//! one file per seed. `scripts/fuzz` runs it before fuzzing; the corpora are not
//! committed, since libFuzzer grows them and they are rebuilt from this in seconds.
//!
//! - `client_binary`: each vector's binary form; `client_json`: its JSON text.
//! - `tcp_framing`: the target's 10-byte header (frame limit, chunk sizes), then
//!   each vector's TCP form, and one stream of all of them back to back.
//! - `envelope`: inter-node envelopes carrying the vectors' server frames, and one
//!   of each entity message.

use std::error::Error;
use std::path::Path;

use chorus_wire::cluster::{
    CloseCode, EntityEnvelope, Envelope, GroupOp, NestedFrame, RequestEnvelope, SessionAddr,
};
use chorus_wire::codec::{Frame, encode_envelope};
use chorus_wire::{LiveItem, Prio, ServerFrame};

const VECTORS: &str = include_str!("../tests/golden/vectors.json");

/// The `tcp_framing` header: a limit of 64 KiB (`0xffff` + 1), then eight chunk
/// sizes that split frames at awkward places.
const TCP_HEADER: [u8; 10] = [0xff, 0xff, 1, 3, 4, 7, 16, 64, 200, 255];

#[derive(serde::Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    direction: String,
    json: String,
    binary: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    let Some(out) = std::env::args_os().nth(1) else {
        return Err("usage: fuzz_seeds <corpus directory>".into());
    };
    let out = Path::new(&out);
    let file: File = serde_json::from_str(VECTORS)?;
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)
    };

    let mut stream = TCP_HEADER.to_vec();
    let mut server_frames = Vec::new();
    for vector in &file.vectors {
        let binary = hex::decode(&vector.binary)?;
        let name = format!("{}-{}", vector.direction, vector.name);
        write("client_binary", &name, &binary)?;
        write("client_json", &name, vector.json.as_bytes())?;
        let mut tcp = u32::try_from(binary.len())?.to_be_bytes().to_vec();
        tcp.extend_from_slice(&binary);
        write("tcp_framing", &name, &[&TCP_HEADER[..], &tcp].concat())?;
        stream.extend_from_slice(&tcp);
        if vector.direction == "server_to_client" {
            server_frames.push(ServerFrame::from_binary(&binary)?);
        }
    }
    write("tcp_framing", "all-vectors", &stream)?;

    for (i, envelope) in envelopes(server_frames).iter().enumerate() {
        write(
            "envelope",
            &format!("envelope-{i:03}"),
            &encode_envelope(envelope),
        )?;
    }
    Ok(())
}

/// Envelopes of every kind: the golden server frames to sessions and users, and
/// one of each entity message.
fn envelopes(frames: Vec<ServerFrame>) -> Vec<Envelope> {
    let session = SessionAddr {
        node: "n2".into(),
        generation: 1_767_225_600_000,
        id: 42,
        user: "alice".into(),
    };
    let request = RequestEnvelope {
        user: "alice".into(),
        reference: "r1".into(),
        reply: session.clone(),
    };
    let entity = |msg| Envelope::Entity { hops: 1, msg };
    let mut all = Vec::new();
    for frame in frames {
        all.push(entity(EntityEnvelope::UserDeliver {
            user: "alice".into(),
            frame: NestedFrame(frame.clone()),
            except: Some(7),
        }));
        all.push(Envelope::Sessions {
            ids: vec![1, 300, u64::MAX],
            user: "alice".into(),
            frame: NestedFrame(frame),
        });
    }
    let item = LiveItem {
        seq: 0,
        id: "d1".into(),
        from: "bob".into(),
        body: "666 弾幕".into(),
        ts_ms: 1_767_225_600_000,
        prio: Prio::Paid,
    };
    all.extend([
        entity(EntityEnvelope::UserAttach {
            user: "alice".into(),
            session: session.clone(),
            call: 7,
        }),
        entity(EntityEnvelope::UserDetach {
            user: "alice".into(),
            session: 42,
        }),
        entity(EntityEnvelope::UserKick {
            user: "alice".into(),
        }),
        entity(EntityEnvelope::ConvSend {
            conv: "dm:alice:bob".into(),
            sender: "alice".into(),
            session: session.clone(),
            client_id: "m-1".into(),
            body: "héllo 👋".into(),
        }),
        entity(EntityEnvelope::ConvHistory {
            conv: "group:g".into(),
            request: request.clone(),
            after: Some(300),
            before: None,
            limit: 50,
        }),
        entity(EntityEnvelope::ConvRead {
            conv: "group:g".into(),
            user: "alice".into(),
            seq: 65_536,
        }),
        entity(EntityEnvelope::ConvGroup {
            conv: "group:g".into(),
            request,
            op: GroupOp::Create {
                name: "team".into(),
                members: vec!["alice".into(), "bob".into()],
            },
        }),
        entity(EntityEnvelope::LiveJoin {
            room: "r".into(),
            reference: "j".into(),
            viewer: session.clone(),
            new_viewer: true,
        }),
        entity(EntityEnvelope::LiveLeave {
            room: "r".into(),
            reference: None,
            reply: None,
            node: "n2".into(),
        }),
        entity(EntityEnvelope::LiveViewers {
            room: "r".into(),
            node: "n2".into(),
            count: 20_000,
        }),
        entity(EntityEnvelope::LiveDanmaku {
            room: "r".into(),
            item: item.clone(),
            reply: session,
        }),
        entity(EntityEnvelope::LiveSlowMode {
            room: "r".into(),
            seconds: Some(30),
        }),
        Envelope::Close {
            ids: vec![1],
            reason: CloseCode::SlowConsumer,
        },
        Envelope::Reply { call: u64::MAX },
        Envelope::LiveBatch {
            room: "r".into(),
            frame: NestedFrame(ServerFrame::LiveBatch {
                room: "r".into(),
                items: vec![item],
                viewers: 3,
                dropped: 2,
            }),
            weight: 3,
            ordinary: false,
        },
    ]);
    all
}
