//! A small fault-injecting HTTP proxy in front of the test registry:
//! truncated bodies, flipped bytes, 5xx. One request per connection
//! (`Connection: close` upstream), which keeps it simple and is fine for a
//! client that reconnects.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What to do to GET requests whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The first matching response loses the second half of its body
    /// (the connection drops).
    TruncateOnce { path_contains: String },
    /// Every matching response has one byte flipped.
    FlipByte { path_contains: String },
    /// The first matching request gets a 503.
    ServerErrorOnce { path_contains: String },
}

/// The running proxy; stopped on drop.
pub struct FaultProxy {
    pub addr: String,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (log, hits, fault, upstream) =
                        (log.clone(), hits.clone(), fault.clone(), upstream.clone());
                    std::thread::spawn(move || {
                        let _ = serve(conn, &upstream, &fault, &hits, &log);
                    });
                }
            })
        };
        FaultProxy {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// `METHOD path range` of every request seen.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    fault: &Fault,
    hits: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    let mut range = "-".to_owned();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("range:") {
            range = line[6..].trim().to_owned();
        }
        if !lower.starts_with("connection:") {
            headers.push(line);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    log.lock()
        .expect("lock")
        .push(format!("{method} {path} {range}"));

    let (pattern, kind) = match fault {
        Fault::TruncateOnce { path_contains } => (path_contains, 0),
        Fault::FlipByte { path_contains } => (path_contains, 1),
        Fault::ServerErrorOnce { path_contains } => (path_contains, 2),
    };
    let matches = method == "GET" && path.contains(pattern.as_str());
    let mut client = client;
    if matches && kind == 2 && hits.fetch_add(1, Ordering::SeqCst) == 0 {
        client.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return client.shutdown(Shutdown::Both);
    }

    let mut up = TcpStream::connect(upstream)?;
    let mut head = request_line.clone();
    for h in &headers {
        head.push_str(h);
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let (resp_head, body) = response.split_at(split);
    let mut body = body.to_vec();
    if matches && kind == 1 && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    if matches && kind == 0 && hits.fetch_add(1, Ordering::SeqCst) == 0 {
        client.write_all(resp_head)?;
        client.write_all(&body[..body.len() / 2])?;
        client.flush()?;
        return client.shutdown(Shutdown::Both);
    }
    client.write_all(resp_head)?;
    client.write_all(&body)?;
    client.flush()?;
    client.shutdown(Shutdown::Both)
}
