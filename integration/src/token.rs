//! A bearer-token server for docker-registry's `auth.token` scheme (what Docker Hub, ghcr.io
//! and most registries speak), so the puller's token flow is tested against the real registry.
//!
//! The key and self-signed certificate come from the `openssl` CLI; tokens are ES256 JWTs
//! with the certificate in `x5c`, which the registry checks against its `rootcertbundle`.
//! Policy: anonymous clients may pull repositories under `public/`; the one user may pull
//! and push anything; wrong credentials get 401.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

pub const ISSUER: &str = "mocker-test-token-issuer";
pub const SERVICE: &str = "mocker-test-registry";

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// One token request as the server saw it.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The user of the Basic auth header, if any.
    pub user: Option<String>,
    pub scope: Option<String>,
    /// 200 (token issued) or 401.
    pub status: u16,
}

struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
}

/// A running token server (stopped on drop).
pub struct TokenServer {
    port: u16,
    dir: tempfile::TempDir,
    signer: Arc<Signer>,
    seen: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn openssl(args: &[&str], dir: &Path) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("openssl: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

impl TokenServer {
    /// Starts the server; `user`/`password` is the one account.
    pub fn start(user: &str, password: &str) -> io::Result<TokenServer> {
        let dir = tempfile::Builder::new().prefix("mocker-token-").tempdir()?;
        let d = dir.path();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=mocker-test-token",
            ],
            d,
        )?;
        openssl(
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out",
                "key.p8",
            ],
            d,
        )?;
        openssl(
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
            d,
        )?;
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &fs::read(d.join("key.p8"))?,
            &rng,
        )
        .map_err(|e| io::Error::other(format!("token key: {e}")))?;
        let signer = Arc::new(Signer {
            key,
            cert_der: fs::read(d.join("cert.der"))?,
        });
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sg, sn, sp) = (signer.clone(), seen.clone(), stop.clone());
        let creds = (user.to_string(), password.to_string());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = serve_one(conn, &sg, &sn, &creds);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(TokenServer {
            port,
            dir,
            signer,
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/token`, the registry's `realm`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The certificate the registry must trust (`rootcertbundle`).
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// A token granting `actions` on `repo`, minted directly (e.g. for pushing).
    pub fn mint(&self, repo: &str, actions: &[&str]) -> String {
        sign(
            &self.signer,
            "harness",
            json!([{"type": "repository", "name": repo, "actions": actions}]),
        )
    }

    /// Every token request seen so far.
    pub fn seen(&self) -> Vec<TokenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sign(signer: &Signer, subject: &str, access: Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&signer.cert_der)],
    });
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + 600,
        "nbf": now - 60,
        "iat": now,
        "jti": format!("{now}-{}", rand_suffix()),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let sig = signer
        .key
        .sign(&rng, input.as_bytes())
        .expect("ES256 signature");
    format!("{input}.{}", b64url(sig.as_ref()))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_one(
    mut conn: TcpStream,
    signer: &Signer,
    seen: &Mutex<Vec<TokenRequest>>,
    (user, password): &(String, String),
) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = text
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_string();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    // Several scopes may be asked at once (`scope=a&scope=b`).
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .collect();
    let basic = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if !k.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let token = v.trim().strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    });
    let authenticated = match &basic {
        None => false,
        Some((u, p)) if u == user && p == password => true,
        Some(_) => {
            seen.lock().unwrap().push(TokenRequest {
                user: basic.as_ref().map(|(u, _)| u.clone()),
                scope: scopes.first().cloned(),
                status: 401,
            });
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(resp.as_bytes())?;
            return conn.write_all(body);
        }
    };
    // Grant what the policy allows; the registry then refuses what is missing.
    let access: Vec<Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| authenticated || (*a == "pull" && name.starts_with("public/")))
                .collect();
            Some(json!({"type": kind, "name": name, "actions": granted}))
        })
        .collect();
    seen.lock().unwrap().push(TokenRequest {
        user: basic.as_ref().map(|(u, _)| u.clone()),
        scope: scopes.first().cloned(),
        status: 200,
    });
    let subject = basic.map(|(u, _)| u).unwrap_or_default();
    let token = sign(signer, &subject, Value::Array(access));
    let body = json!({"token": token, "access_token": token, "expires_in": 600}).to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())
}
