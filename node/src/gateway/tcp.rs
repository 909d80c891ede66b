//! The TCP transport: each frame is a 4-byte big-endian length, then the binary frame.
//!
//! The length is checked against `max_frame` before the body is read or buffered.

use std::sync::Arc;

use bytes::BytesMut;
use chorus_actors::SharedFrame;
use chorus_wire::Encoding;
use chorus_wire::codec::TcpDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{FrameReader, FrameWriter, GatewayContext, ReadEvent, serve_connection};

/// Reads length-prefixed frames.
pub struct TcpReader {
    socket: OwnedReadHalf,
    decoder: TcpDecoder,
}

impl FrameReader for TcpReader {
    async fn next(&mut self) -> ReadEvent {
        loop {
            match self.decoder.next_payload() {
                Ok(Some(payload)) => return ReadEvent::Frame(payload, Encoding::Binary),
                Ok(None) => {}
                Err(e) => return ReadEvent::Bad(e),
            }
            // About to wait for the client: a long frame's buffer is not kept idle.
            self.decoder.shrink();
            // `read_buf` is cancel-safe: bytes read are kept in the decoder's buffer.
            match self.socket.read_buf(self.decoder.buffer()).await {
                Ok(0) if self.decoder.pending() > 0 => {
                    return ReadEvent::Bad(chorus_wire::DecodeError::Truncated);
                }
                Ok(0) => return ReadEvent::Eof,
                Ok(_) => {}
                Err(e) => return ReadEvent::Failed(e),
            }
        }
    }
}

/// Writes length-prefixed frames, a batch in as few writes as its size allows:
/// frames are laid out in `scratch` up to [`SCRATCH_MAX`] bytes per write, so no
/// buffered writer (with a buffer of its own held by every idle connection) is
/// needed, and `scratch` is given back after a write that made it large.
pub struct TcpWriter {
    socket: OwnedWriteHalf,
    scratch: BytesMut,
}

/// Bytes laid out for one socket write at most; a longer frame is written from
/// its own buffer.
const SCRATCH_MAX: usize = 64 * 1024;

/// `scratch` larger than this after a write is dropped rather than kept.
const SCRATCH_KEEP: usize = 16 * 1024;

impl FrameWriter for TcpWriter {
    async fn write_batch(
        &mut self,
        frames: &[SharedFrame],
        _encoding: Encoding,
    ) -> std::io::Result<()> {
        // TCP always carries the binary encoding.
        self.scratch.clear();
        for f in frames {
            let bytes = f.bytes(Encoding::Binary);
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            if self.scratch.len() + 4 + bytes.len() > SCRATCH_MAX && !self.scratch.is_empty() {
                self.socket.write_all(&self.scratch).await?;
                self.scratch.clear();
            }
            self.scratch.extend_from_slice(&len.to_be_bytes());
            if bytes.len() > SCRATCH_MAX {
                // A frame this long goes out from its own (shared) bytes.
                self.socket.write_all(&self.scratch).await?;
                self.scratch.clear();
                self.socket.write_all(bytes).await?;
            } else {
                self.scratch.extend_from_slice(bytes);
            }
        }
        if !self.scratch.is_empty() {
            self.socket.write_all(&self.scratch).await?;
        }
        Ok(())
    }

    fn shrink(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = BytesMut::new();
        }
    }

    async fn close(&mut self) {
        let _ = self.socket.shutdown().await;
    }
}

/// Accepts TCP clients until shutdown.
pub async fn run(listener: TcpListener, ctx: Arc<GatewayContext>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = ctx.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                let reader = TcpReader {
                    socket: read,
                    decoder: TcpDecoder::new(ctx.max_frame),
                };
                let writer = TcpWriter {
                    socket: write,
                    scratch: BytesMut::new(),
                };
                tokio::spawn(serve_connection(reader, writer, ctx.clone(), "tcp"));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
