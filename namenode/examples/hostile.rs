//! Hostile load against a running NameNode, for the issue-12 targets (run by hand):
//!
//! ```text
//! cargo run --release -p chkv-namenode --example hostile -- NN_PID DATANODE_ADDR HTTP_ADDR [CONNS]
//! ```
//!
//! 1. A stranger without the secret tries for 10 s to register (bare `register` lines and
//!    handshakes with a guessed secret), advertising a client address it listens on: it must
//!    get no welcome and no DataNode may connect to it.
//! 2. CONNS connections (default 1000) each send 1 MB lines without end while the NameNode's
//!    RSS is sampled and its `/api/cluster` polled.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn status_ok(http: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&http, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /api/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.starts_with("HTTP/1.1 200") && body.contains("\"epoch\"")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: hostile NN_PID DATANODE_ADDR HTTP_ADDR [CONNS]");
        std::process::exit(2);
    }
    let pid: u32 = args[1].parse().expect("pid");
    let nn: SocketAddr = args[2].parse().expect("datanode addr");
    let http: SocketAddr = args[3].parse().expect("http addr");
    let conns: usize = args.get(4).map_or(1000, |c| c.parse().expect("conns"));

    // 1. The stranger.
    let bait = TcpListener::bind("127.0.0.1:0").expect("bind");
    let bait_addr = bait.local_addr().expect("addr");
    bait.set_nonblocking(true).expect("nonblocking");
    let register = format!(
        "{{\"type\":\"register\",\"version\":1,\"node_id\":\"stranger\",\"client_addr\":\"{bait_addr}\",\"admin_addr\":\"{bait_addr}\",\"epoch_seen\":0,\"owned_slots\":[[0,16383]]}}\n"
    );
    let hello = format!(
        "{{\"type\":\"hello\",\"version\":1,\"node_id\":\"stranger\",\"nonce\":\"{}\"}}\n",
        "00".repeat(32)
    );
    let (mut attempts, mut welcomed, mut reached) = (0, 0, 0);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        for first in [&register, &hello] {
            attempts += 1;
            if let Ok(mut s) = TcpStream::connect(nn) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
                let _ = s.write_all(first.as_bytes());
                let _ = s.write_all(
                    format!("{{\"type\":\"proof\",\"proof\":\"{}\"}}\n", "ab".repeat(32))
                        .as_bytes(),
                );
                let _ = s.write_all(register.as_bytes());
                let mut buf = vec![0u8; 4096];
                if let Ok(n) = s.read(&mut buf) {
                    if String::from_utf8_lossy(&buf[..n]).contains("welcome") {
                        welcomed += 1;
                    }
                }
            }
        }
        while bait.accept().is_ok() {
            reached += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "stranger: {attempts} registration attempts in 10 s, {welcomed} welcomed, {reached} connections from DataNodes, listed in /api/cluster: {}",
        {
            let mut s = TcpStream::connect(http).expect("http");
            let _ = s.write_all(
                b"GET /api/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            body.contains("stranger")
        }
    );

    // 2. The flood.
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let baseline = rss_mb(pid);
    let mut threads = Vec::new();
    for _ in 0..conns {
        let (stop, open, sent) = (stop.clone(), open.clone(), sent.clone());
        threads.push(std::thread::spawn(move || {
            let line = vec![b'x'; 1 << 20];
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(nn) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                open.fetch_add(1, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    match s.write(&line) {
                        Ok(n) if n > 0 => {
                            sent.fetch_add(n, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                open.fetch_sub(1, Ordering::Relaxed);
            }
        }));
    }
    let mut peak = 0;
    let mut healthy = 0;
    let mut polls = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(rss_mb(pid));
        polls += 1;
        if status_ok(http) {
            healthy += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    println!(
        "flood: {conns} connections sending 1 MB lines for 10 s ({} MB sent): NameNode RSS {baseline} MB before, peak {peak} MB; status page answered {healthy}/{polls} polls",
        sent.load(Ordering::Relaxed) >> 20
    );
}
