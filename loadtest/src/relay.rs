//! A loopback TCP relay between the clients and the node that can cut every
//! connection at once — a network blip for the whole fleet, without touching the
//! node or the SDK.
//!
//! Each accepted connection is copied both ways to the node; [`Relay::cut`] bumps a
//! generation counter and every connection accepted before it drops both of its
//! sockets. The listener stays up, so the clients reconnect through it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running relay.
#[derive(Debug)]
pub(crate) struct Relay {
    addr: SocketAddr,
    /// The generation: a connection ends when it changes from the one it started in.
    generation: watch::Sender<u64>,
    /// Connections currently relayed.
    open: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Listens on an ephemeral loopback port and relays to `upstream`.
    pub(crate) async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (generation, _) = watch::channel(0u64);
        let open = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            generation.clone(),
            open.clone(),
        ));
        Ok(Self {
            addr,
            generation,
            open,
            accept,
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections currently relayed.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Drops every connection relayed so far; later ones are relayed normally.
    pub(crate) fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    generation: watch::Sender<u64>,
    open: Arc<AtomicU64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or similar: try again shortly.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let mut cut = generation.subscribe();
        let born = *cut.borrow_and_update();
        let open = open.clone();
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = pipe(client, upstream) => {}
                _ = cut.wait_for(|g| *g != born) => {}
            }
            // Both sockets are dropped here: the client sees its connection end.
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Copies both ways until either side closes or fails.
async fn pipe(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut node) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = node.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
}
