//! The TCP transport: each frame is a 4-byte big-endian length, then the binary frame.
//!
//! The length is checked against `max_frame` before the body is read or buffered.
//! The reader and writer are generic over the byte stream: the socket's own
//! halves for `tcp://`, the halves of a rustls stream for `tls://`.

use std::sync::Arc;

use bytes::BytesMut;
use chorus_actors::SharedFrame;
use chorus_wire::Encoding;
use chorus_wire::codec::TcpDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{
    Accepted, FrameReader, FrameWriter, GatewayContext, ReadEvent, serve_connection, tls_accept,
};
use crate::tls::NodeTls;

/// Reads length-prefixed frames.
pub struct TcpReader<R> {
    socket: R,
    decoder: TcpDecoder,
}

impl<R: AsyncRead + Unpin + Send + 'static> FrameReader for TcpReader<R> {
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
pub struct TcpWriter<W> {
    socket: W,
    scratch: BytesMut,
}

/// Bytes laid out for one socket write at most; a longer frame is written from
/// its own buffer.
const SCRATCH_MAX: usize = 64 * 1024;

/// `scratch` larger than this after a write is dropped rather than kept.
const SCRATCH_KEEP: usize = 16 * 1024;

impl<W: AsyncWrite + Unpin + Send + 'static> FrameWriter for TcpWriter<W> {
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
        // TLS keeps records it could not write yet; a plain socket has nothing
        // to flush.
        self.socket.flush().await
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

/// Accepts TCP clients until shutdown; with `tls`, each speaks TLS first.
pub async fn run(listener: TcpListener, ctx: Arc<GatewayContext>, tls: Option<NodeTls>) {
    let transport = if tls.is_some() { "tls" } else { "tcp" };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = ctx.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Over a cap: dropped before anything is read or allocated.
                let Some(admitted) = ctx.admit(peer, transport) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                match &tls {
                    None => {
                        let (read, write) = stream.into_split();
                        tokio::spawn(serve(read, write, ctx.clone(), transport, admitted));
                    }
                    Some(tls) => {
                        let acceptor = tls.client_acceptor();
                        let ctx = ctx.clone();
                        tokio::spawn(async move {
                            let Some(stream) =
                                tls_accept(&acceptor, stream, admitted.hello_by, transport).await
                            else {
                                return;
                            };
                            let (read, write) = tokio::io::split(stream);
                            serve(read, write, ctx, transport, admitted).await;
                        });
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve<R, W>(
    read: R,
    write: W,
    ctx: Arc<GatewayContext>,
    transport: &'static str,
    admitted: Accepted,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let reader = TcpReader {
        socket: read,
        decoder: TcpDecoder::new(ctx.max_frame),
    };
    let writer = TcpWriter {
        socket: write,
        scratch: BytesMut::new(),
    };
    serve_connection(reader, writer, ctx, transport, admitted).await;
}

#[cfg(test)]
mod tests;
