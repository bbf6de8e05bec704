//! Basic auth against an htpasswd-protected docker-registry: flags, docker's config.json
//! (`$DOCKER_CONFIG`) and containers' auth.json (`$REGISTRY_AUTH_FILE`); wrong credentials are
//! a clear error that leaks no password and leaves nothing behind.

use std::fs;

use base64::Engine as _;
use integration::image::{Compression, Format, busybox_image};
use integration::pull::PullEnv;
use serde_json::json;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55";

fn setup() -> (PullEnv, String) {
    let env = PullEnv::with_auth(USER, PASSWORD);
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    let image = env.push("private/bb", "latest", &img);
    (env, image)
}

fn assert_auth_failure(out: &integration::pull::Run) {
    out.fails_with(&[]);
    let err = out.stderr();
    let lower = err.to_lowercase();
    assert!(
        [
            "unauthorized",
            "authentication",
            "401",
            "credentials",
            "denied"
        ]
        .iter()
        .any(|w| lower.contains(w)),
        "error should say authentication failed: {err}"
    );
    assert!(!err.contains(PASSWORD), "password leaked in: {err}");
    assert!(!err.contains("wrong-pass"), "password leaked in: {err}");
}

fn auth_file(user: &str, password: &str, registry: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    json!({"auths": {registry: {"auth": token}}}).to_string()
}

#[test]
fn registry_really_requires_auth() {
    let (env, _) = setup();
    let anon = integration::push::Client::new(&env.registry.addr());
    let r = anon.request("GET", "/v2/", &[], &[]).unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn no_credentials_is_refused() {
    let (env, image) = setup();
    let dir = env.dir("bundle");
    assert_auth_failure(&env.pull(&image, &dir, &[]));
    env.assert_nothing_left(&dir, &[]);
}

#[test]
fn wrong_password_flag_is_refused() {
    let (env, image) = setup();
    let dir = env.dir("bundle");
    assert_auth_failure(&env.pull(
        &image,
        &dir,
        &["--username", USER, "--password", "wrong-pass"],
    ));
    env.assert_nothing_left(&dir, &[]);
    assert_auth_failure(&env.pull(
        &image,
        &dir,
        &["--username", "mallory", "--password", PASSWORD],
    ));
    env.assert_nothing_left(&dir, &[]);
}

#[test]
fn right_credentials_by_flags() {
    let (env, image) = setup();
    let dir = env.dir("bundle");
    env.pull(&image, &dir, &["--username", USER, "--password", PASSWORD])
        .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
}

#[test]
fn credentials_from_docker_config() {
    let (env, image) = setup();
    let cfg = tempfile::tempdir().unwrap();
    let addr = env.registry.addr();

    fs::write(
        cfg.path().join("config.json"),
        auth_file(USER, "wrong-pass", &addr),
    )
    .unwrap();
    let dir = env.dir("bundle");
    let out = integration::pull::run(
        env.cmd()
            .env("DOCKER_CONFIG", cfg.path())
            .arg(&image)
            .arg(&dir),
    );
    assert_auth_failure(&out);
    env.assert_nothing_left(&dir, &[]);

    fs::write(
        cfg.path().join("config.json"),
        auth_file(USER, PASSWORD, &addr),
    )
    .unwrap();
    integration::pull::run(
        env.cmd()
            .env("DOCKER_CONFIG", cfg.path())
            .arg(&image)
            .arg(&dir),
    )
    .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
}

#[test]
fn credentials_from_containers_auth_json() {
    let (env, image) = setup();
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("auth.json");
    fs::write(&file, auth_file(USER, PASSWORD, &env.registry.addr())).unwrap();
    let dir = env.dir("bundle");
    integration::pull::run(
        env.cmd()
            .env("REGISTRY_AUTH_FILE", &file)
            .arg(&image)
            .arg(&dir),
    )
    .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
}

#[test]
fn flags_win_over_config_files() {
    let (env, image) = setup();
    let cfg = tempfile::tempdir().unwrap();
    fs::write(
        cfg.path().join("config.json"),
        auth_file(USER, "wrong-pass", &env.registry.addr()),
    )
    .unwrap();
    let dir = env.dir("bundle");
    integration::pull::run(
        env.cmd()
            .env("DOCKER_CONFIG", cfg.path())
            .args(["--username", USER, "--password", PASSWORD])
            .arg(&image)
            .arg(&dir),
    )
    .ok();
}

// ---- bearer tokens (docker-registry `auth.token`, as Docker Hub and ghcr.io do) -----------

use integration::push::Client;
use integration::registry::Registry;
use integration::token::TokenServer;

fn token_setup() -> (TokenServer, PullEnv) {
    let ts = TokenServer::start(USER, PASSWORD).expect("token server");
    let reg = Registry::start_with_token(&ts).expect("docker-registry with token auth");
    let env = PullEnv::with(reg);
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    for repo in ["public/bb", "private/bb"] {
        Client::new(&env.registry.addr())
            .bearer(&ts.mint(repo, &["pull", "push"]))
            .push_image(repo, "latest", &img)
            .unwrap_or_else(|e| panic!("push {repo} with a token: {e}"));
    }
    (ts, env)
}

#[test]
fn token_registry_refuses_requests_without_a_token() {
    let (_ts, env) = token_setup();
    let r = Client::new(&env.registry.addr())
        .request("GET", "/v2/public/bb/manifests/latest", &[], &[])
        .unwrap();
    assert_eq!(r.status, 401);
    let challenge = r.header("WWW-Authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
}

#[test]
fn anonymous_bearer_token_pull() {
    let (ts, env) = token_setup();
    let dir = env.dir("bundle");
    env.pull(&env.image_ref("public/bb", "latest"), &dir, &[])
        .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
    let seen = ts.seen();
    assert!(
        seen.iter().any(|r| r.user.is_none()
            && r.status == 200
            && r.scope.as_deref() == Some("repository:public/bb:pull")),
        "no anonymous pull token was asked for: {seen:?}"
    );
}

#[test]
fn bearer_token_with_credentials() {
    let (ts, env) = token_setup();
    let image = env.image_ref("private/bb", "latest");

    // Anonymous: the token grants nothing on private/, the registry refuses.
    let dir = env.dir("anon");
    assert_auth_failure(&env.pull(&image, &dir, &[]));
    env.assert_nothing_left(&dir, &[]);

    // Wrong password: the token server refuses.
    let dir = env.dir("wrong");
    assert_auth_failure(&env.pull(
        &image,
        &dir,
        &["--username", USER, "--password", "wrong-pass"],
    ));
    env.assert_nothing_left(&dir, &[]);

    let dir = env.dir("right");
    env.pull(&image, &dir, &["--username", USER, "--password", PASSWORD])
        .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
    assert!(
        ts.seen()
            .iter()
            .any(|r| r.user.as_deref() == Some(USER) && r.status == 200),
        "no token was asked for with the credentials: {:?}",
        ts.seen()
    );
}
