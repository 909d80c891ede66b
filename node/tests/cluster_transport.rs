//! The cluster layer across real processes: membership (chitchat over UDP) and the
//! transport (ractor_cluster over TCP), each node a `chorus-cluster-probe` process
//! (ractor's registry and process groups are process-global, so nodes cannot share
//! a process).
//!
//! Every wait reads the probes' stdout lines with a deadline; the only fixed wait
//! is the window in which a wrong-cookie node must *not* connect.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bound on waits for something that should take a few gossip rounds.
const SOON: Duration = Duration::from_secs(10);

/// Lines a probe printed, with when they arrived.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<(Instant, String)>>,
    arrived: Condvar,
}

struct Probe {
    id: String,
    port: u16,
    child: Child,
    stdin: ChildStdin,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    generation: u64,
}

/// A port free for both TCP (the transport) and UDP (gossip) on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            into.lines.lock().unwrap().push((Instant::now(), line));
            into.arrived.notify_all();
        }
    });
}

impl Probe {
    fn start(id: &str, port: u16, seeds: &[u16], cookie: &str) -> Probe {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus-cluster-probe"));
        cmd.args(["--node-id", id])
            .args(["--gossip", &format!("127.0.0.1:{port}")])
            .args(["--cluster", &format!("127.0.0.1:{port}")])
            .args(["--cookie", cookie])
            .env("RUST_LOG", "chorus_node=debug,warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for seed in seeds {
            cmd.args(["--seed", &format!("127.0.0.1:{seed}")]);
        }
        let mut child = cmd.spawn().expect("the probe binary starts");
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let stdin = child.stdin.take().unwrap();
        let mut probe = Probe {
            id: id.to_string(),
            port,
            child,
            stdin,
            stdout,
            stderr,
            generation: 0,
        };
        let ready = probe.wait_for(0, &format!("ready {id} "), SOON);
        probe.generation = ready.rsplit(' ').next().unwrap().parse().unwrap();
        probe
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// How many lines so far: a mark to wait for lines after it.
    fn mark(&self) -> usize {
        self.stdout.lines.lock().unwrap().len()
    }

    /// Waits for a line starting with `prefix` after `mark`; returns the line.
    fn wait_for(&self, mark: usize, prefix: &str, within: Duration) -> String {
        self.wait_for_at(mark, prefix, within).1
    }

    fn wait_for_at(&self, mark: usize, prefix: &str, within: Duration) -> (Instant, String) {
        let deadline = Instant::now() + within;
        let mut lines = self.stdout.lines.lock().unwrap();
        loop {
            if let Some(found) = lines
                .iter()
                .skip(mark)
                .find(|(_, line)| line.starts_with(prefix))
            {
                return found.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                drop(lines);
                panic!(
                    "{}: no line starting with {prefix:?} within {within:?}\n{}",
                    self.id,
                    self.diagnostics()
                );
            }
            lines = self
                .stdout
                .arrived
                .wait_timeout(lines, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// How many log lines (stderr) so far: a mark for [`Probe::wait_for_log`].
    fn log_mark(&self) -> usize {
        self.stderr.lines.lock().unwrap().len()
    }

    /// Waits for a log line (stderr) containing `needle` after `mark`.
    fn wait_for_log(&self, mark: usize, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut lines = self.stderr.lines.lock().unwrap();
        loop {
            if let Some((_, line)) = lines.iter().skip(mark).find(|(_, l)| l.contains(needle)) {
                return line.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                drop(lines);
                panic!(
                    "{}: no log line with {needle:?}\n{}",
                    self.id,
                    self.diagnostics()
                );
            }
            lines = self
                .stderr
                .arrived
                .wait_timeout(lines, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Lines after `mark` that start with `prefix`.
    fn lines_since(&self, mark: usize, prefix: &str) -> Vec<String> {
        self.stdout
            .lines
            .lock()
            .unwrap()
            .iter()
            .skip(mark)
            .filter(|(_, line)| line.starts_with(prefix))
            .map(|(_, line)| line.clone())
            .collect()
    }

    fn diagnostics(&self) -> String {
        let tail = |lines: &Lines| {
            let lines = lines.lines.lock().unwrap();
            let skip = lines.len().saturating_sub(60);
            lines[skip..]
                .iter()
                .map(|(_, line)| format!("  {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "--- stdout of {}:\n{}\n--- stderr of {}:\n{}",
            self.id,
            tail(&self.stdout),
            self.id,
            tail(&self.stderr)
        )
    }

    /// Waits until this probe reports every node of `others` live and serving and
    /// connected.
    fn wait_connected(&self, mark: usize, others: &[&str]) {
        for other in others {
            self.wait_for(mark, &format!("member {other} serving"), SOON);
            self.wait_for(mark, &format!("connected {other}"), SOON);
        }
    }

    /// Sends `payload` to `to` and waits until `to` prints it.
    fn exchange(&mut self, to: &Probe, payload: &[u8]) {
        let mark = to.mark();
        let hex = hex::encode(payload);
        let sent = self.mark();
        self.send(&format!("send {} {hex}", to.id));
        self.wait_for(sent, &format!("sent {}", to.id), SOON);
        to.wait_for(mark, &format!("recv {} {hex}", self.id), SOON);
    }

    /// `kill -9`.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// `quit` on stdin; the probe shuts its transport down and exits 0.
    fn quit(mut self) {
        self.send("quit");
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status}\n{}",
                    self.id,
                    self.diagnostics()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not quit\n{}",
                self.id,
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three nodes find each other through a seed, exchange frames every way, and stay
/// connected through garbage on their ports, malformed frames, and a node with the
/// wrong cookie, which gossip does not even let in.
#[test]
fn three_nodes_connect_exchange_and_shrug_off_bad_peers() {
    let started = Instant::now();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let mut a = Probe::start("node-a", pa, &[], "secret-1");
    let mut b = Probe::start("node-b", pb, &[pa], "secret-1");
    let mut c = Probe::start("node-c", pc, &[pa], "secret-1");
    a.wait_connected(0, &["node-b", "node-c"]);
    b.wait_connected(0, &["node-a", "node-c"]);
    c.wait_connected(0, &["node-a", "node-b"]);
    eprintln!(
        "3 nodes connected {:?} after the first start",
        started.elapsed()
    );

    // Frames every way, including to the node that dialed and from the one dialed.
    a.exchange(&b, b"a to b");
    b.exchange(&a, b"b to a");
    a.exchange(&c, b"a to c");
    c.exchange(&a, b"c to a");
    b.exchange(&c, b"b to c");
    c.exchange(&b, &[0u8, 1, 2, 255]);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    a.exchange(&c, &big);
    // To itself: its own inbox.
    let mark = a.mark();
    a.send(&format!("send node-a {}", hex::encode(b"a to a")));
    a.wait_for(
        mark,
        &format!("recv node-a {}", hex::encode(b"a to a")),
        SOON,
    );

    // A client that connects to b's cluster port and never speaks: b closes it once
    // the handshake timeout passes.
    let mut idle = TcpStream::connect(b.addr()).unwrap();
    let idle_since = Instant::now();

    // Garbage on b's cluster port: random bytes, a huge length prefix, a length
    // prefix followed by bytes that are not protobuf.
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 8],
        [8u64.to_be_bytes().as_slice(), &[0xff; 8]].concat(),
        (0..4096u32).map(|i| (i * 7919 % 256) as u8).collect(),
    ] {
        let mut raw = TcpStream::connect(b.addr()).unwrap();
        let _ = raw.write_all(&garbage);
        drop(raw);
    }
    // Garbage on b's gossip port.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for garbage in [
        &b""[..],
        b"\x00",
        b"\xff\xff\xff\xff not chitchat",
        &[0x01; 1500],
    ] {
        udp.send_to(garbage, b.addr()).unwrap();
    }
    // Malformed frames to b's Endpoint from an authenticated peer: no header, a bad
    // magic, a bad version, a sender id that is too long, a bad sender id.
    let mark_b = b.mark();
    for raw in [
        "",
        "00",
        "deadbeef",
        "5858010161",
        "4346020161",
        "434601ff61",
        "4346010220ff",
    ] {
        let mark = a.mark();
        a.send(&format!("sendraw node-b {raw}"));
        a.wait_for(mark, "sent node-b", SOON);
    }
    // b's Endpoint is still there, in order, after all of that.
    a.exchange(&b, b"after the garbage");
    assert!(
        b.lines_since(mark_b, "recv ").len() == 1,
        "{}",
        b.diagnostics()
    );
    c.exchange(&b, b"c still reaches b");
    b.exchange(&c, b"b still reaches c");

    // A node with the wrong cookie: its gossip is sealed with another key, so it
    // is refused before chitchat reads it. Nobody sees it as a member, it sees
    // nobody, and it never gets a session. Its id sorts first, so it would be the
    // one dialing everybody.
    let marks = [a.mark(), b.mark(), c.mark()];
    let log_mark = a.log_mark();
    let mut intruder = Probe::start("node-0", free_port(), &[pa], "wrong-cookie");
    let refusal = a.wait_for_log(log_mark, "dropped gossip packets", SOON);
    assert!(refusal.contains("bad_mac"), "{refusal}");
    // Several gossip rounds (250 ms) and redial backoffs' worth of refusals.
    std::thread::sleep(Duration::from_secs(3));
    for (probe, mark) in [&a, &b, &c].iter().zip(marks) {
        assert!(
            probe.lines_since(mark, "member node-0").is_empty(),
            "{}",
            probe.diagnostics()
        );
    }
    assert!(
        intruder.lines_since(0, "member ").is_empty(),
        "{}",
        intruder.diagnostics()
    );
    for (probe, mark) in [&a, &b, &c].iter().zip(marks) {
        assert!(
            probe.lines_since(mark, "connected").is_empty(),
            "{}",
            probe.diagnostics()
        );
        assert!(
            probe.lines_since(mark, "disconnected").is_empty(),
            "{}",
            probe.diagnostics()
        );
    }
    assert!(
        intruder.lines_since(0, "connected").is_empty(),
        "{}",
        intruder.diagnostics()
    );
    let mark = a.mark();
    a.send("send node-0 00");
    assert!(
        a.wait_for(mark, "send-error node-0", SOON)
            .contains("no session")
    );
    let mark = intruder.mark();
    intruder.send("send node-a 00");
    intruder.wait_for(mark, "send-error node-a", SOON);
    a.exchange(&b, b"undisturbed");
    c.exchange(&a, b"undisturbed");

    // The silent client was closed by b's handshake timeout (5 s).
    idle.set_read_timeout(Some(SOON)).unwrap();
    let mut buf = [0u8; 64];
    let closed = match idle.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(closed, "the silent client is still connected");
    eprintln!(
        "a silent cluster client was closed after {:?}",
        idle_since.elapsed()
    );

    intruder.quit();
    a.quit();
    b.quit();
    c.quit();
    eprintln!("three_nodes test took {:?}", started.elapsed());
}

/// `kill -9` of a node: its peers see its session drop at once and gossip declares
/// it dead within seconds; restarted (a new incarnation on the same ports), it is
/// live and connected again. Twice: once after it was declared dead, once so soon
/// that its previous incarnation is still considered alive.
#[test]
fn a_killed_node_is_detected_and_reconnects_when_restarted() {
    let started = Instant::now();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let mut n1 = Probe::start("node-1", p1, &[], "secret-2");
    let mut n2 = Probe::start("node-2", p2, &[p1], "secret-2");
    let mut n3 = Probe::start("node-3", p3, &[p1], "secret-2");
    n1.wait_connected(0, &["node-2", "node-3"]);
    n2.wait_connected(0, &["node-1", "node-3"]);
    n3.wait_connected(0, &["node-1", "node-2"]);
    for probe in [&mut n1, &mut n3] {
        let mark = probe.mark();
        probe.send("timeout node-2");
        let line = probe.wait_for(mark, "timeout node-2", SOON);
        eprintln!("{}: failure-detection timeout now: {line}", probe.id);
    }

    // node-2 is dialed by node-1 and dials node-3: both directions lose it.
    let marks = (n1.mark(), n3.mark());
    let killed = Instant::now();
    n2.kill();
    let (gone1, _) = n1.wait_for_at(marks.0, "disconnected node-2", SOON);
    let (gone3, _) = n3.wait_for_at(marks.1, "disconnected node-2", SOON);
    let (dead1, _) = n1.wait_for_at(marks.0, "dead node-2", SOON);
    let (dead3, _) = n3.wait_for_at(marks.1, "dead node-2", SOON);
    eprintln!(
        "kill -9 node-2: sessions dropped after {:?} / {:?}; declared dead after {:?} (node-1) / {:?} (node-3)",
        gone1 - killed,
        gone3 - killed,
        dead1 - killed,
        dead3 - killed
    );
    assert!(dead1 - killed < Duration::from_secs(6) && dead3 - killed < Duration::from_secs(6));
    n1.exchange(&n3, b"still together");
    n3.exchange(&n1, b"still together");
    let mark = n1.mark();
    n1.send("send node-2 00");
    n1.wait_for(mark, "send-error node-2", SOON);

    // Restart after it was declared dead.
    let marks = (n1.mark(), n3.mark());
    let restarted = Instant::now();
    let mut n2 = Probe::start("node-2", p2, &[p1], "secret-2");
    let (back1, _) = n1.wait_for_at(marks.0, "connected node-2", SOON);
    let (back3, _) = n3.wait_for_at(marks.1, "connected node-2", SOON);
    n2.wait_connected(0, &["node-1", "node-3"]);
    eprintln!(
        "node-2 restarted: connected again after {:?} (node-1) / {:?} (node-3)",
        back1 - restarted,
        back3 - restarted
    );
    n1.exchange(&n2, b"welcome back");
    n2.exchange(&n3, b"hello again");
    n3.exchange(&n2, b"hello again");

    // Kill and restart at once: the old incarnation is not yet declared dead, and
    // node-1's redials to it are refused until the new one listens.
    let old_generation = n2.generation;
    let marks = (n1.mark(), n3.mark());
    let killed = Instant::now();
    n2.kill();
    let n2 = Probe::start("node-2", p2, &[p1], "secret-2");
    assert!(n2.generation > old_generation);
    let (back1, _) = n1.wait_for_at(marks.0, "connected node-2", SOON);
    let (back3, _) = n3.wait_for_at(marks.1, "connected node-2", SOON);
    n2.wait_connected(0, &["node-1", "node-3"]);
    eprintln!(
        "node-2 killed and restarted at once: connected again after {:?} (node-1) / {:?} (node-3)",
        back1 - killed,
        back3 - killed
    );
    let mut n2 = n2;
    n2.exchange(&n1, b"new incarnation");
    n3.exchange(&n2, b"new incarnation");

    n1.quit();
    n2.quit();
    n3.quit();
    eprintln!("kill/restart test took {:?}", started.elapsed());
}
