//! TLS registries: a real docker-registry serving HTTPS on 127.0.0.1 with a certificate from a
//! CA the test makes. Trusted through `--cert-dir` or a certs.d directory it is pulled over
//! HTTPS; untrusted it is a clear one-line error (no silent drop to plain HTTP) unless
//! `--insecure`; a plain-HTTP loopback registry still works (HTTPS first, then plain HTTP).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration::image::{BuiltImage, Compression, Format, busybox_image};
use integration::pull::{PullEnv, Run, remove_bundle_args, run};

/// A CA and a server certificate it signs for 127.0.0.1 and localhost, as PEM files:
/// `ca/ca.crt` (a `--cert-dir`), `server.crt`, `server.key`.
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::Builder::new()
            .prefix("mocker-test-ca-")
            .tempdir()
            .unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("mocker test CA {name}"));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let key = KeyPair::generate().unwrap();
        let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
        fs::create_dir(dir.path().join("ca")).unwrap();
        fs::write(dir.path().join("ca/ca.crt"), ca_cert.pem()).unwrap();
        fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        TestCa { dir }
    }

    /// A directory holding only `ca.crt`: what `--cert-dir` takes.
    fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    fn ca_pem(&self) -> String {
        fs::read_to_string(self.cert_dir().join("ca.crt")).unwrap()
    }
}

/// A registry holding busybox as `bb:latest` (pushed over plain HTTP), then serving HTTPS
/// with `ca`'s server certificate.
fn tls_env(ca: &TestCa) -> (PullEnv, BuiltImage) {
    let mut env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    env.push("bb", "latest", &img);
    env.registry
        .restart_with_tls(
            &ca.dir.path().join("server.crt"),
            &ca.dir.path().join("server.key"),
        )
        .unwrap();
    assert!(env.registry.is_tls());
    (env, img)
}

fn layer_ids(img: &BuiltImage) -> Vec<String> {
    img.layers.iter().map(|l| l.diff_id.clone()).collect()
}

/// `mocker-pull` with `$MOCKER_CERTS_D` set (never the host's /etc), then the pull args.
fn pull(env: &PullEnv, certs_d: &Path, image: &str, dir: &Path, extra: &[&str]) -> Run {
    run(env
        .cmd()
        .env("MOCKER_CERTS_D", certs_d)
        .args(extra)
        .arg(image)
        .arg(dir))
}

fn assert_pulled(env: &PullEnv, dir: &Path) {
    assert!(dir.join("rootfs/bin/busybox").is_file());
    run(env.cmd().args(remove_bundle_args(dir))).ok();
    assert!(!dir.exists());
}

/// HTTPS is what was spoken: the registry only answers TLS, and it logged our requests
/// (a plain request never gets past its TLS layer to the access log).
fn assert_served_manifest(env: &PullEnv) {
    let log = env.registry.log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"GET /v2/bb/manifests/latest") && l.contains("\" 200 ")),
        "no manifest GET in the registry log: {log}"
    );
}

#[test]
fn tls_registry_is_pulled_over_https_with_its_ca_from_cert_dir() {
    let ca = TestCa::new("a");
    let (env, _img) = tls_env(&ca);
    let empty = env.dir("keep-no-certs.d");
    fs::create_dir(&empty).unwrap();
    let image = env.image_ref("bb", "latest");
    let dir = env.dir("bundle");
    let cert_dir = ca.cert_dir().to_string_lossy().into_owned();
    pull(&env, &empty, &image, &dir, &["--cert-dir", &cert_dir]).ok();
    assert_served_manifest(&env);
    assert_pulled(&env, &dir);
    // A warm pull (layers cached) still talks HTTPS for the manifest.
    pull(&env, &empty, &image, &dir, &["--cert-dir", &cert_dir]).ok();
    assert_pulled(&env, &dir);
}

#[test]
fn tls_registry_ca_is_found_in_a_certs_d_directory() {
    let ca = TestCa::new("b");
    let (env, _img) = tls_env(&ca);
    let image = env.image_ref("bb", "latest");
    // Two roots, as /etc/containers/certs.d then /etc/docker/certs.d: the CA is in the second.
    let roots = env.dir("keep-certs.d");
    let (first, second) = (roots.join("containers"), roots.join("docker"));
    fs::create_dir_all(&first).unwrap();
    let host_dir = second.join(env.registry.addr());
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("ca.crt"), ca.ca_pem()).unwrap();
    let both = std::env::join_paths([&first, &second]).unwrap();
    let dir = env.dir("bundle");
    // The directory is per registry name: `localhost:PORT` has none yet, as with docker.
    let by_name = format!("localhost:{}/bb:latest", env.registry.port());
    let e = pull(&env, Path::new(&both), &by_name, &dir, &[]);
    e.fails_with(&["certificate", "UnknownIssuer"]);
    env.assert_nothing_left(&dir, &[]);
    pull(&env, Path::new(&both), &image, &dir, &[]).ok();
    assert_served_manifest(&env);
    assert_pulled(&env, &dir);
    let named = first.join(format!("localhost:{}", env.registry.port()));
    fs::create_dir(&named).unwrap();
    fs::write(named.join("ca.crt"), ca.ca_pem()).unwrap();
    pull(&env, Path::new(&both), &by_name, &dir, &[]).ok();
    assert_pulled(&env, &dir);
}

#[test]
fn untrusted_certificate_is_a_clear_error_unless_insecure() {
    let ca = TestCa::new("c");
    let other = TestCa::new("other");
    let (env, img) = tls_env(&ca);
    let image = env.image_ref("bb", "latest");
    let empty = env.dir("keep-no-certs.d");
    fs::create_dir(&empty).unwrap();
    let dir = env.dir("bundle");
    let ids = layer_ids(&img);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let addr = env.registry.addr();

    // No CA: refused at once (no retries, no plain-HTTP fallback), with what to do about it.
    let t = Instant::now();
    let line = pull(&env, &empty, &image, &dir, &[]).fails_with(&[
        &addr,
        "TLS certificate rejected",
        "UnknownIssuer",
        "--cert-dir",
        "--insecure",
    ]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(!line.contains("plain"), "{line}");
    env.assert_nothing_left(&dir, &ids);

    // Another CA: still refused, naming the directory whose CAs do not sign it.
    let wrong = other.cert_dir().to_string_lossy().into_owned();
    pull(&env, &empty, &image, &dir, &["--cert-dir", &wrong]).fails_with(&[
        &addr,
        "TLS certificate rejected",
        &wrong,
    ]);
    env.assert_nothing_left(&dir, &ids);

    // --plain-http means plain HTTP only: this registry does not speak it.
    pull(&env, &empty, &image, &dir, &["--plain-http"]).fails_with(&[&addr]);
    env.assert_nothing_left(&dir, &ids);

    // --insecure: the certificate is not verified, the pull goes through over HTTPS.
    pull(&env, &empty, &image, &dir, &["--insecure"]).ok();
    assert_served_manifest(&env);
    assert_pulled(&env, &dir);
}

#[test]
fn bad_cert_dir_or_ca_file_is_named() {
    let ca = TestCa::new("d");
    let (env, _img) = tls_env(&ca);
    let image = env.image_ref("bb", "latest");
    let empty = env.dir("keep-no-certs.d");
    fs::create_dir(&empty).unwrap();
    let dir = env.dir("bundle");
    let missing = env.dir("keep-missing").to_string_lossy().into_owned();
    pull(&env, &empty, &image, &dir, &["--cert-dir", &missing]).fails_with(&[&missing]);
    env.assert_nothing_left(&dir, &[]);
    let bad = env.dir("keep-bad");
    fs::create_dir(&bad).unwrap();
    fs::write(bad.join("ca.crt"), "not a certificate\n").unwrap();
    let bad_s = bad.to_string_lossy().into_owned();
    pull(&env, &empty, &image, &dir, &["--cert-dir", &bad_s]).fails_with(&["ca.crt", "PEM"]);
    env.assert_nothing_left(&dir, &[]);
}

/// Every other test pulls from a plain-HTTP loopback registry; here it is explicit, with
/// the HTTPS attempt first, and with --insecure (HTTPS not verified, then plain HTTP).
#[test]
fn plain_http_loopback_registry_still_works() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("bb", "latest", &img);
    let empty = env.dir("keep-no-certs.d");
    fs::create_dir(&empty).unwrap();
    let dir = env.dir("bundle");
    for extra in [&[][..], &["--insecure"], &["--plain-http"]] {
        let t = Instant::now();
        pull(&env, &empty, &image, &dir, extra).ok();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{extra:?}: {:?}",
            t.elapsed()
        );
        assert_pulled(&env, &dir);
    }
    // The HTTPS attempt came first and was answered at once by something not TLS.
    let out = pull(&env, &empty, &image, &dir, &["--debug"]).ok();
    assert!(
        out.stderr().contains("no HTTPS") && out.stderr().contains("trying plain HTTP"),
        "{}",
        out.stderr()
    );
    assert_pulled(&env, &dir);
}

/// Credentials never go to a registry whose certificate was not checked: the "is this TLS?"
/// probe is anonymous, and a rejected certificate stops the pull before any login. With
/// --insecure (the user's explicit choice) they are sent, and the registry logs an
/// "authorized request" (what it logs for each request with valid credentials).
#[test]
fn credentials_are_not_sent_before_the_certificate_is_verified() {
    let ca = TestCa::new("auth");
    let mut env = PullEnv::with_auth("alice", "s3cret");
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("bb", "latest", &img);
    env.registry
        .restart_with_tls(
            &ca.dir.path().join("server.crt"),
            &ca.dir.path().join("server.key"),
        )
        .unwrap();
    let empty = env.dir("keep-no-certs.d");
    fs::create_dir(&empty).unwrap();
    let dir = env.dir("bundle");
    let creds = ["-u", "alice", "-p", "s3cret"];
    let authorized = |env: &PullEnv| env.registry.log().matches("authorized request").count();
    let before = authorized(&env);
    pull(&env, &empty, &image, &dir, &creds).fails_with(&["TLS certificate rejected"]);
    env.assert_nothing_left(&dir, &[]);
    assert_eq!(
        authorized(&env),
        before,
        "the user reached the registry before its certificate was verified"
    );
    let mut args = creds.to_vec();
    args.push("--insecure");
    pull(&env, &empty, &image, &dir, &args).ok();
    assert!(
        authorized(&env) > before,
        "the registry never saw the user: the assertion above proves nothing\n{}",
        env.registry.log()
    );
    assert_pulled(&env, &dir);
}
