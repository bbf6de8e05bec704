//! A real Debian `docker-registry` (distribution 2.8) on 127.0.0.1 for the puller's tests.
//!
//! Each [`Registry`] has its own config, storage and log in a private directory, listens on a
//! free loopback port, and is killed and removed on drop. The storage root is exposed so tests
//! can damage a blob on disk (digest mismatch, truncation), and the access log so tests can
//! count how often a blob was fetched. [`Registry::restart_with_tls`] switches it to HTTPS
//! (certificate and key from the test), e.g. after pushing over plain HTTP.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry binary; `$MOCKER_REGISTRY_BIN` overrides it.
pub fn registry_binary() -> PathBuf {
    std::env::var_os("MOCKER_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

/// Where the registry's state lives: a temp dir removed on drop, or a caller's directory.
enum Home {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Home {
    fn path(&self) -> &Path {
        match self {
            Home::Temp(t) => t.path(),
            Home::Kept(p) => p,
        }
    }
}

/// A running `docker-registry serve`.
pub struct Registry {
    child: Option<Child>,
    home: Home,
    port: u16,
    credentials: Option<(String, String)>,
    /// `auth.token` (realm, rootcertbundle) when tokens are required.
    token: Option<(String, PathBuf)>,
    /// `http.tls` (certificate, key) when serving HTTPS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Registry {
    /// An anonymous registry (no auth), state in a temp dir.
    pub fn start() -> io::Result<Registry> {
        Self::new(Home::Temp(temp_home()?)).launch(None)
    }

    /// A registry requiring HTTP basic auth with one htpasswd user.
    pub fn start_with_auth(user: &str, password: &str) -> io::Result<Registry> {
        let mut reg = Self::new(Home::Temp(temp_home()?));
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("htpasswd (apache2-utils): {e}")))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        fs::write(reg.home().join("htpasswd"), out.stdout)?;
        reg.credentials = Some((user.to_string(), password.to_string()));
        reg.launch(None)
    }

    /// A registry requiring bearer tokens from `server` (see [`crate::token`]).
    pub fn start_with_token(server: &crate::token::TokenServer) -> io::Result<Registry> {
        let mut reg = Self::new(Home::Temp(temp_home()?));
        reg.token = Some((server.realm(), server.cert_path()));
        reg.launch(None)
    }

    /// A registry whose state lives in `dir` (kept after drop), e.g. for `testenv`.
    /// `port` 0 picks a free one.
    pub fn start_in(dir: &Path, port: u16) -> io::Result<Registry> {
        fs::create_dir_all(dir)?;
        Self::new(Home::Kept(dir.canonicalize()?)).launch((port != 0).then_some(port))
    }

    fn new(home: Home) -> Registry {
        Registry {
            child: None,
            home,
            port: 0,
            credentials: None,
            token: None,
            tls: None,
        }
    }

    /// Starts on `port`, or on a free port: one can be taken between our probe and the
    /// registry's bind, so a few are tried.
    fn launch(mut self, port: Option<u16>) -> io::Result<Registry> {
        let mut last_err = None;
        for _ in 0..5 {
            self.port = match port {
                Some(p) => p,
                None => free_port()?,
            };
            match self.spawn() {
                Ok(()) => return Ok(self),
                Err(e) => {
                    self.stop();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("registry did not start")))
    }

    fn spawn(&mut self) -> io::Result<()> {
        let home = self.home.path();
        let storage = home.join("storage");
        fs::create_dir_all(&storage)?;
        let auth = if self.credentials.is_some() {
            format!(
                "auth:\n  htpasswd:\n    realm: mocker-test\n    path: {}\n",
                home.join("htpasswd").display()
            )
        } else if let Some((realm, cert)) = &self.token {
            format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                crate::token::SERVICE,
                crate::token::ISSUER,
                cert.display()
            )
        } else {
            String::new()
        };
        let tls = match &self.tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        // No blob descriptor cache: a blob damaged on disk is served as it is now.
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{}\n\
             {tls}\
             {auth}",
            storage.display(),
            self.port
        );
        let config_path = home.join("config.yml");
        fs::write(&config_path, config)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("registry.log"))?;
        let mut cmd = Command::new(registry_binary());
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If the test process dies without dropping us, the registry dies with it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("spawn {}: {e}", registry_binary().display()),
            )
        })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20))
    }

    /// Polls `GET /v2/` until it answers 200 or 401 (auth required); over HTTPS, until its
    /// TLS layer answers our plain request with 400 ("HTTP request to an HTTPS server").
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "docker-registry exited with {status} on port {}: {}",
                        self.port,
                        self.log_tail()
                    )));
                }
            }
            if let Ok(code) = probe(self.port) {
                if code == 200 || code == 401 || (code == 400 && self.tls.is_some()) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "docker-registry on port {} not ready after {timeout:?}: {}",
                    self.port,
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `addr/repo:tag` (or `addr/repo@digest` when `reference` starts with `sha256:`).
    pub fn image_ref(&self, repo: &str, reference: &str) -> String {
        if reference.contains(':') {
            format!("{}/{repo}@{reference}", self.addr())
        } else {
            format!("{}/{repo}:{reference}", self.addr())
        }
    }

    /// The user and password when the registry requires basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's private directory (config, storage, log).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The filesystem storage driver's root directory.
    pub fn storage_root(&self) -> PathBuf {
        self.home().join("storage")
    }

    /// The file holding a blob's bytes, `sha256:HEX` or `HEX`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage_root()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Everything the registry logged, including its access log lines.
    pub fn log(&self) -> String {
        fs::read_to_string(self.home().join("registry.log")).unwrap_or_default()
    }

    /// How many successful `GET /v2/<repo>/blobs/<digest>` the registry served (any repo).
    pub fn blob_get_count(&self, digest: &str) -> usize {
        let needle = format!("/blobs/{digest}");
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(&needle) && !l.contains("level="))
            .filter(|l| l.contains("\" 200 ") || l.contains("\" 206 ") || l.contains("\" 307 "))
            .count()
    }

    /// Kills the registry and waits for it; the state stays until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts a stopped registry on the same port with the same storage.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Restarts the registry on the same port and storage serving HTTPS only, with this PEM
    /// certificate (chain) and key. The push client speaks plain HTTP: push first.
    pub fn restart_with_tls(&mut self, cert: &Path, key: &Path) -> io::Result<()> {
        self.stop();
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self.spawn()
    }

    /// Whether the registry serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn temp_home() -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("mocker-registry-")
        .tempdir()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A loopback address where nothing listens: an unreachable registry.
pub fn closed_addr() -> io::Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

/// The status code of `GET /v2/`.
fn probe(port: u16) -> io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < 12 {
        let k = s.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let head = std::str::from_utf8(&buf[..n]).map_err(io::Error::other)?;
    head.split(' ')
        .nth(1)
        .and_then(|c| c.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {head:?}")))
}

/// A fault to inject: the first `times` requests whose path contains `path_contains` get
/// `status` (e.g. 503, 429), with `body` if given, instead of reaching the registry.
#[derive(Clone, Debug)]
pub struct Fault {
    pub path_contains: String,
    pub status: u16,
    pub times: usize,
    /// (Content-Type, bytes) of the injected answer.
    pub body: Option<(String, Vec<u8>)>,
}

impl Fault {
    /// An empty answer with `status`.
    pub fn status(path_contains: &str, status: u16, times: usize) -> Fault {
        Fault {
            path_contains: path_contains.to_string(),
            status,
            times,
            body: None,
        }
    }

    /// A 200 answer with this content, e.g. a manifest the real registry would not store.
    pub fn respond(path_contains: &str, content_type: &str, body: &[u8], times: usize) -> Fault {
        Fault {
            path_contains: path_contains.to_string(),
            status: 200,
            times,
            body: Some((content_type.to_string(), body.to_vec())),
        }
    }
}

/// A small HTTP/1.1 proxy in front of a real registry that injects [`Fault`]s, to test
/// retries. One request per connection (it answers `Connection: close`), GET/HEAD only.
pub struct FaultyProxy {
    port: u16,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct ProxyState {
    faults: Vec<Fault>,
    /// (method, path, status sent) of every request seen.
    seen: Vec<(String, String, u16)>,
}

impl FaultyProxy {
    pub fn start(upstream: &str, faults: Vec<Fault>) -> io::Result<FaultyProxy> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(ProxyState {
            faults,
            seen: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, up) = (state.clone(), stop.clone(), upstream.to_string());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, up) = (st.clone(), up.clone());
                        std::thread::spawn(move || {
                            let _ = proxy_one(conn, &up, &st);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(FaultyProxy {
            port,
            state,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request seen: (method, path, status the client got from the proxy or upstream).
    pub fn seen(&self) -> Vec<(String, String, u16)> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    state: &std::sync::Mutex<ProxyState>,
) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // A TLS hello (handshake record 0x16): a client trying HTTPS first. Answer as a real
    // HTTP server does, at once, so it falls back to plain HTTP without waiting for a timeout.
    let mut first = [0u8; 1];
    if client.peek(&mut first)? == 1 && first[0] == 0x16 {
        client.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut first = text.lines().next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let fault = state
        .lock()
        .unwrap()
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && path.contains(&f.path_contains))
        .map(|f| {
            f.times -= 1;
            (f.status, f.body.clone())
        });
    if let Some((status, body)) = fault {
        state
            .lock()
            .unwrap()
            .seen
            .push((method.clone(), path, status));
        let (ctype, body) = body.unwrap_or_default();
        let mut resp = format!(
            "HTTP/1.1 {status} Injected\r\nContent-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n",
            body.len()
        );
        if !ctype.is_empty() {
            resp.push_str(&format!("Content-Type: {ctype}\r\n"));
            let digest = crate::image::sha256_digest(&body);
            resp.push_str(&format!("Docker-Content-Digest: {digest}\r\n"));
        }
        resp.push_str("\r\n");
        client.write_all(resp.as_bytes())?;
        if method != "HEAD" {
            client.write_all(&body)?;
        }
        return Ok(());
    }
    // Forward with Connection: close so both sides end after this one exchange.
    let mut forwarded = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(forwarded.as_bytes())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut status = 0u16;
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if status == 0 {
            status = String::from_utf8_lossy(&buf[..n.min(12)])
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
        client.write_all(&buf[..n])?;
    }
    state.lock().unwrap().seen.push((method, path, status));
    Ok(())
}
