//! Test support: start real `spool serve` processes on loopback ports in temporary dirs, and
//! talk to them with raw Kafka requests (encoded by the kafka-protocol crate) or librdkafka.
#![allow(dead_code)]

pub mod cli;
pub mod cluster;
pub mod kafka;
pub mod rdk;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running spool process.
pub struct Spool {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// The listener's host (127.0.0.1 but in clusters).
    host: String,
    port: u16,
    extra: Vec<String>,
    /// Extra environment for the process (e.g. LD_PRELOAD of a fault-injecting layer).
    pub env: Vec<(String, String)>,
    /// Soft and hard RLIMIT_NOFILE for the process, when set.
    pub nofile: Option<u64>,
}

/// A loopback port that was free a moment ago (for restarts on the same port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Spool {
    /// Starts spool on an ephemeral port with its data under `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(dir, 0, extra)
    }

    /// A broker on 127.0.0.1, not yet started.
    fn unstarted(dir: &Path, port: u16, extra: &[&str]) -> Self {
        Spool {
            child: None,
            addr: String::new(),
            data_dir: dir.join("data"),
            log_path: dir.join("spool.log"),
            host: "127.0.0.1".into(),
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            nofile: None,
        }
    }

    /// Starts spool on `port` (0: any) with its data under `dir`.
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Self {
        let mut s = Self::unstarted(dir, port, extra);
        s.launch();
        s
    }

    /// Starts spool with its listeners taken from its configuration (`extra`), not a flag.
    pub fn start_own_listeners(dir: &Path, extra: &[&str]) -> Self {
        let mut s = Self::unstarted(dir, 0, extra);
        s.host = String::new();
        s.launch();
        s
    }

    /// Starts spool with its open-file limit (soft and hard) set to `nofile`.
    pub fn start_with_nofile(dir: &Path, extra: &[&str], nofile: u64) -> Self {
        let mut s = Self::unstarted(dir, 0, extra);
        s.nofile = Some(nofile);
        s.launch();
        s
    }

    /// Starts spool on an ephemeral port with extra environment variables.
    pub fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut s = Self::unstarted(dir, 0, extra);
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.launch();
        s
    }

    fn launch(&mut self) {
        let ready = self.data_dir.with_file_name("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_spool"));
        if let Some(nofile) = self.nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command.arg("serve");
        // No host: the listeners come from the configuration under test.
        if !self.host.is_empty() {
            command
                .arg("--listeners")
                .arg(format!("{}:{}", self.host, self.port));
        }
        let child = command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn spool");
        self.child = Some(child);
        let addr = wait_for(Duration::from_secs(30), || {
            if !self.is_running() {
                panic!("spool exited at start; log:\n{}", self.log_tail());
            }
            std::fs::read_to_string(&ready)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        });
        self.addr =
            addr.unwrap_or_else(|| panic!("spool did not start; log:\n{}", self.log_tail()));
        self.port = self.addr.rsplit(':').next().unwrap().parse().unwrap();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last lines of the broker's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// A memory figure of the process from /proc (`VmRSS`, `VmHWM`: peak RSS), in KiB.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let pid = self.child.as_ref().expect("spool is running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
    }

    /// SIGKILL: the process gets no chance to flush or checkpoint.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait (bounded) for a graceful exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let status = wait_for(Duration::from_secs(30), || c.try_wait().unwrap());
        match status {
            Some(s) => s.success(),
            None => {
                c.kill().unwrap();
                c.wait().unwrap();
                false
            }
        }
    }

    /// Starts the process again on the same port and data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker before restarting it");
        self.launch();
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A raw Kafka protocol connection.
pub struct Raw {
    pub stream: TcpStream,
    correlation: i32,
}

impl Raw {
    pub fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Self::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        Raw {
            stream,
            correlation: 0,
        }
    }

    /// A request whose failure (a closed or silent connection, an undecodable answer) is
    /// `None` rather than a panic, for polling nodes that may be down.
    pub fn try_request<Q: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Q,
    ) -> Option<R> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("spool-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .ok()?;
        body.encode(&mut buf, version).ok()?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).ok()?;
        let mut frame = self.read_frame()?;
        ResponseHeader::decode(&mut frame, key.response_header_version(version)).ok()?;
        R::decode(&mut frame, version).ok()
    }

    /// Sends raw bytes as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Encodes and sends a request; returns its correlation id.
    pub fn send<R: Encodable>(&mut self, key: ApiKey, version: i16, body: &R) -> i32 {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("spool-test")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        self.correlation
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// Reads and decodes a response to a request of `key` at `version`.
    pub fn recv<R: Decodable>(&mut self, key: ApiKey, version: i16) -> (i32, R) {
        let mut frame = self.read_frame().expect("broker closed the connection");
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        let body = R::decode(&mut frame, version).unwrap();
        assert!(
            !frame.has_remaining(),
            "trailing bytes after {key:?} v{version} response"
        );
        (header.correlation_id, body)
    }

    pub fn request<Q: Encodable, R: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Q,
    ) -> R {
        let sent = self.send(key, version, body);
        let (got, response) = self.recv(key, version);
        assert_eq!(sent, got, "correlation id");
        response
    }

    /// True when the broker has closed this connection (read gives EOF or reset).
    /// Whether the broker closed the connection: end of stream or a reset within the read
    /// timeout. Bytes, or silence until the timeout, mean it is still open.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}
