//! Running `spool` console commands as processes, bounded in time.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished command printed, and how it exited.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    /// Panics with both outputs unless the command exited 0.
    pub fn ok(self) -> Ran {
        assert!(
            self.status.success(),
            "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command exited non-zero; returns its standard error.
    pub fn failed(self) -> String {
        assert!(
            !self.status.success(),
            "command should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `spool ARGS` with `stdin`, killing it (and failing) after `limit`.
pub fn spool_with(args: &[&str], stdin: &str, limit: Duration) -> Ran {
    run(args, &[], stdin, limit)
}

/// Runs `spool ARGS` with these environment variables added, empty stdin and a 60 s limit.
pub fn spool_env(args: &[&str], env: &[(&str, &str)]) -> Ran {
    run(args, env, "", Duration::from_secs(60))
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: &str, limit: Duration) -> Ran {
    let start = Instant::now();
    let mut child = spawn(args, env);
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let status = super::wait_for(limit, || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "spool {args:?} did not finish within {limit:?}; stderr:\n{}",
            err.join().unwrap()
        );
    };
    writer.join().unwrap();
    Ran {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: start.elapsed(),
    }
}

/// Runs `spool ARGS` with empty stdin and a 60 s limit.
pub fn spool(args: &[&str]) -> Ran {
    spool_with(args, "", Duration::from_secs(60))
}

/// A background `spool` process, killed when dropped (so a failing test leaves none behind).
pub struct Background(pub Child);

impl Background {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `spool ARGS` in the background (stdin closed, output discarded).
pub fn spawn_quiet(args: &[&str]) -> Background {
    Background(
        Command::new(env!("CARGO_BIN_EXE_spool"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn spool"),
    )
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spool")
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}
