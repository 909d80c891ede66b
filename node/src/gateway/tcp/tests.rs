#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is the failure report.

use chorus_actors::OutFrame;
use chorus_wire::codec::TcpDecoder;
use chorus_wire::{Message, ServerFrame};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::gateway::FrameWriter;

fn page(body_len: usize) -> SharedFrame {
    OutFrame::new(ServerFrame::HistoryPage {
        reference: "h".into(),
        conv: "dm:a:b".into(),
        messages: (1..=15)
            .map(|seq| Message {
                conv: "dm:a:b".into(),
                seq,
                id: format!("m{seq}"),
                from: "a".into(),
                body: "x".repeat(body_len),
                ts_ms: 1,
            })
            .collect(),
        more: true,
    })
}

async fn pair() -> (TcpWriter<tokio::net::tcp::OwnedWriteHalf>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let (_read, write) = server.into_split();
    (
        TcpWriter {
            socket: write,
            scratch: BytesMut::new(),
        },
        client,
    )
}

#[tokio::test]
async fn a_batch_of_long_frames_leaves_no_large_buffer_behind() {
    let (mut writer, mut client) = pair().await;
    // 64 frames of ~60 KiB: a batch of almost 4 MiB.
    let frames: Vec<SharedFrame> = (0..64).map(|_| page(4_000)).collect();
    let total: usize = frames
        .iter()
        .map(|f| 4 + f.bytes(Encoding::Binary).len())
        .sum();
    let reading = tokio::spawn(async move {
        let mut got = vec![0u8; total];
        client.read_exact(&mut got).await.unwrap();
        let mut decoder = TcpDecoder::new(1 << 20);
        decoder.buffer().extend_from_slice(&got);
        let mut n = 0;
        while let Some(f) = decoder.next_frame::<ServerFrame>().unwrap() {
            assert!(matches!(f, ServerFrame::HistoryPage { .. }));
            n += 1;
        }
        n
    });
    writer.write_batch(&frames, Encoding::Binary).await.unwrap();
    assert!(
        writer.scratch.capacity() <= 2 * SCRATCH_MAX,
        "scratch grew to {} for one batch",
        writer.scratch.capacity()
    );
    writer.shrink();
    assert!(writer.scratch.capacity() <= SCRATCH_KEEP);
    assert_eq!(
        reading.await.unwrap(),
        64,
        "every frame arrived whole, in order"
    );

    // Small batches keep their buffer between writes.
    writer
        .write_batch(&[page(10)], Encoding::Binary)
        .await
        .unwrap();
    let kept = writer.scratch.capacity();
    writer.shrink();
    assert_eq!(writer.scratch.capacity(), kept);
}
