//! Retries: 5xx and 429 answers (injected by a proxy in front of the real registry) are
//! retried with backoff; a registry that keeps failing is a clear error, nothing left.

use std::time::{Duration, Instant};

use integration::image::{Compression, Format, busybox_image};
use integration::pull::PullEnv;
use integration::registry::{Fault, FaultyProxy};

fn fault(path: &str, status: u16, times: usize) -> Fault {
    Fault::status(path, status, times)
}

#[test]
fn transient_5xx_and_429_are_retried() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    env.push("bb", "latest", &img);
    let layer = img.layers[0].blob.digest.clone();
    let proxy = FaultyProxy::start(
        &env.registry.addr(),
        vec![
            fault("/manifests/", 503, 2),
            fault(&format!("/blobs/{layer}"), 502, 1),
            fault(&format!("/blobs/{layer}"), 429, 1),
            fault(&format!("/blobs/{}", img.config.digest), 500, 1),
        ],
    )
    .unwrap();
    let dir = env.dir("bundle");
    env.pull(&format!("{}/bb:latest", proxy.addr()), &dir, &[])
        .ok();
    assert!(dir.join("rootfs/bin/busybox").is_file());
    let seen = proxy.seen();
    for status in [503, 502, 429, 500] {
        assert!(
            seen.iter().any(|(_, _, s)| *s == status),
            "fault {status} was never hit: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|(m, p, s)| m == "GET" && p.ends_with(&layer) && *s == 200),
        "the layer was never fetched after the faults: {seen:?}"
    );
}

#[test]
fn registry_that_keeps_failing_is_a_clear_error() {
    let env = PullEnv::new();
    let img = busybox_image(Format::Oci, Compression::Gzip).unwrap();
    env.push("bb", "latest", &img);
    let layer = img.layers[0].blob.digest.clone();
    let proxy = FaultyProxy::start(
        &env.registry.addr(),
        vec![fault(&format!("/blobs/{layer}"), 503, 1_000_000)],
    )
    .unwrap();
    let dir = env.dir("bundle");
    let t = Instant::now();
    let out = env.pull(&format!("{}/bb:latest", proxy.addr()), &dir, &[]);
    out.fails_with(&["503"]);
    assert!(
        t.elapsed() < Duration::from_secs(120),
        "gave up only after {:?}",
        t.elapsed()
    );
    let tries = proxy
        .seen()
        .iter()
        .filter(|(_, p, _)| p.ends_with(&layer))
        .count();
    assert!(
        tries >= 2,
        "a 503 on the layer was not retried ({tries} tries)"
    );
    env.assert_nothing_left(&dir, &[img.layers[0].diff_id.as_str()]);
}

/// Docker schema 1 manifests (which docker-registry 2.8 no longer stores unsigned) are
/// refused with a message that says so.
#[test]
fn schema1_manifest_is_refused_clearly() {
    let env = PullEnv::new();
    let schema1 = br#"{"schemaVersion":1,"name":"bb","tag":"old","architecture":"amd64",
        "fsLayers":[{"blobSum":"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
        "history":[{"v1Compatibility":"{\"id\":\"x\"}"}],"signatures":[]}"#;
    let proxy = FaultyProxy::start(
        &env.registry.addr(),
        vec![Fault::respond(
            "/manifests/old",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
            100,
        )],
    )
    .unwrap();
    let dir = env.dir("bundle");
    let out = env.pull(&format!("{}/bb:old", proxy.addr()), &dir, &[]);
    let line = out.fails_with(&[]).to_lowercase();
    assert!(
        line.contains("schema 1") || line.contains("schema1") || line.contains("v1"),
        "the error should say schema 1 is not supported: {line}"
    );
    env.assert_nothing_left(&dir, &[]);
}
