//! Real etcd processes for the tests: each member on free loopback ports
//! with its own temporary data directory, stopped and removed on drop.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for etcd to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A fresh temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("corsgate-etcd-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One member.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    cluster: String,
    state: &'static str,
    extra: Vec<String>,
}

/// A cluster of members.
pub struct Cluster {
    pub members: Vec<Member>,
}

impl Member {
    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", &self.name])
            .args(["--data-dir", &self.dir.join("data").to_string_lossy()])
            .args(["--listen-client-urls", &self.client_url])
            .args(["--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", self.state])
            .args(["--initial-cluster-token", "corsgate-test"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian package etcd-server) on PATH");
        self.child = Some(child);
    }

    /// Stop the process (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.state = "existing";
        self.spawn();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// `n` members, started, with `extra` flags each (TLS, for example).
    pub fn start(n: usize, extra: &[String]) -> Cluster {
        let scheme = if extra.iter().any(|a| a == "--cert-file") {
            "https"
        } else {
            "http"
        };
        let mut members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
                peer_url: format!("http://127.0.0.1:{}", free_port()),
                dir: temp_dir(&format!("m{i}")),
                child: None,
                cluster: String::new(),
                state: "new",
                extra: extra.to_vec(),
            })
            .collect();
        let cluster: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        for m in &mut members {
            m.cluster = cluster.join(",");
            m.spawn();
        }
        Cluster { members }
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Wait until a plain client can write through `endpoints`.
    pub async fn ready(&self, options: Option<etcd_client::ConnectOptions>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let opts = options
                .clone()
                .unwrap_or_default()
                .with_timeout(Duration::from_secs(2))
                .with_connect_timeout(Duration::from_secs(2));
            if let Ok(mut c) = etcd_client::Client::connect(self.endpoints(), Some(opts)).await {
                if c.put("/ready-probe", "1", None).await.is_ok() {
                    return;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| std::fs::read_to_string(m.dir.join("etcd.log")).unwrap_or_default())
                    .collect();
                panic!("etcd did not become ready:\n{}", logs.join("\n----\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A client on the cluster's endpoints.
pub async fn client(cluster: &Cluster) -> etcd_client::Client {
    cluster.ready(None).await;
    let opts = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(5));
    etcd_client::Client::connect(cluster.endpoints(), Some(opts))
        .await
        .unwrap()
}
