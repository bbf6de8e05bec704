//! The Kubernetes path: containerd's CRI plugin with a runtime handler `mocker` whose runc
//! shim runs this runtime (`BinaryName`), driven by a CRI v1 client as the kubelet would:
//! pull, pod sandbox, container, status, ExecSync, logs, stop, remove, nothing left behind.
//! Images come from a local registry (the sandbox image too); the pod uses the host's
//! network namespace, so no CNI plugin touches the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use integration::engines::{ParentCgroups, runtime_path, stop_daemon};
use integration::image::{Config, ImageBuilder, busybox_entries};
use integration::push::Client;
use integration::registry::Registry;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

/// containerd with the CRI plugin, its own root, state, socket and config.
struct CriContainerd {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl CriContainerd {
    fn start(registry: &str, sandbox_image: &str) -> CriContainerd {
        let dir = tempfile::Builder::new()
            .prefix("mocker-cri-")
            .tempdir()
            .unwrap();
        let d = dir.path().display().to_string();
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[{cri}]
  sandbox_image = "{sandbox_image}"
  # No CAP_SYS_RESOURCE on this host: the sandbox may not lower its oom_score_adj.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    default_runtime_name = "mocker"
  [{cri}.containerd.runtimes.mocker]
    runtime_type = "io.containerd.runc.v2"
    [{cri}.containerd.runtimes.mocker.options]
      BinaryName = "{runtime}"
      Root = "{d}/runtime-root"
  [{cri}.cni]
    bin_dir = "{d}/cni-bin"
    conf_dir = "{d}/cni-conf"
  [{cri}.registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
            runtime = runtime_path().display()
        );
        fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = fs::File::create(dir.path().join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (just setup installs it)");
        CriContainerd { dir, daemon }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        stop_daemon(&mut self.daemon);
        // containerd's overlay snapshots stay mounted after it exits.
        if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().display().to_string();
            let mut points: Vec<&str> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&root))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

async fn connect(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    let t0 = Instant::now();
    loop {
        let s = socket.clone();
        let attempt = Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let s = s.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(s).await?))
                }
            }))
            .await;
        match attempt {
            Ok(ch) => return ch,
            Err(e) if t0.elapsed() > Duration::from_secs(60) => panic!("CRI socket: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[test]
fn a_pod_runs_on_the_runtime_through_the_cri() {
    integration::runtime::require_root();
    let registry = Registry::start().expect("registry");
    let addr = registry.addr();
    // The sandbox ("pause") image: busybox sleeping; the workload image: busybox.
    let pause = ImageBuilder::new()
        .config(Config::default().cmd(&["sleep", "100000"]))
        .layer(&busybox_entries().unwrap())
        .build();
    let busybox = ImageBuilder::new()
        .config(
            Config::default()
                .cmd(&["sh"])
                .env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        )
        .layer(&busybox_entries().unwrap())
        .build();
    let push = Client::for_registry(&registry);
    push.push_image("library/pause", "test", &pause).unwrap();
    push.push_image("library/busybox", "test", &busybox)
        .unwrap();
    let pause_ref = format!("{addr}/library/pause:test");
    let image_ref = format!("{addr}/library/busybox:test");
    // The CRI plugin's cgroup parent; removed again once containerd is gone.
    let _cgroups = ParentCgroups::new("k8s.io");
    let ctd = CriContainerd::start(&addr, &pause_ref);
    let logs = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = connect(&ctd.socket()).await;
        let mut runtime = RuntimeServiceClient::new(channel.clone());
        let mut images = ImageServiceClient::new(channel);
        let version = runtime
            .version(VersionRequest::default())
            .await
            .unwrap_or_else(|e| panic!("CRI version: {e}\n{}", ctd.log()))
            .into_inner();
        assert_eq!(version.runtime_api_version, "v1");
        images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: image_ref.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("PullImage: {e}\n{}", ctd.log()));
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "mocker-pod".into(),
                uid: "mocker-pod-uid".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: logs.path().display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = runtime
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(sandbox_config.clone()),
                runtime_handler: "mocker".into(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log()))
            .into_inner()
            .pod_sandbox_id;
        let created = runtime
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "work".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: image_ref.clone(),
                        ..Default::default()
                    }),
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        "echo started-on-mocker; sleep 600".into(),
                    ],
                    log_path: "work.log".into(),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox_config),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", ctd.log()))
            .into_inner()
            .container_id;
        runtime
            .start_container(StartContainerRequest {
                container_id: created.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", ctd.log()));
        let status = runtime
            .container_status(ContainerStatusRequest {
                container_id: created.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(status.state, ContainerState::ContainerRunning as i32);
        // It is this runtime's container (its state file), not runc's.
        let state = ctd
            .dir
            .path()
            .join("runtime-root/k8s.io")
            .join(&created)
            .join("state.json");
        let state =
            fs::read_to_string(&state).unwrap_or_else(|e| panic!("{}: {e}", state.display()));
        assert!(state.contains("pidStartTime"), "{state}");
        // What `kubectl exec` and exec probes use.
        let exec = runtime
            .exec_sync(ExecSyncRequest {
                container_id: created.clone(),
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "cat /proc/1/cmdline; exit 3".into(),
                ],
                timeout: 10,
            })
            .await
            .unwrap_or_else(|e| panic!("ExecSync: {e}\n{}", ctd.log()))
            .into_inner();
        assert_eq!(exec.exit_code, 3);
        assert!(
            String::from_utf8_lossy(&exec.stdout).contains("sleep"),
            "{exec:?}"
        );
        // The container's log, in CRI's format.
        let log = logs.path().join("work.log");
        let t0 = Instant::now();
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("started-on-mocker")
        {
            assert!(t0.elapsed() < Duration::from_secs(20), "no log line");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        runtime
            .stop_container(StopContainerRequest {
                container_id: created.clone(),
                timeout: 2,
            })
            .await
            .unwrap();
        runtime
            .remove_container(RemoveContainerRequest {
                container_id: created.clone(),
            })
            .await
            .unwrap();
        runtime
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
        runtime
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .unwrap();
        let left = runtime
            .list_containers(ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(left.containers.is_empty(), "{left:?}");
    });
    // Nothing of the pod is left for the runtime either.
    let runtime_root = ctd.dir.path().join("runtime-root");
    let states: Vec<_> = fs::read_dir(&runtime_root)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let containers: Vec<_> = states
        .iter()
        .flat_map(|ns| {
            fs::read_dir(ns)
                .map(|rd| rd.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .filter(|n| n != "@seccomp")
        .collect();
    assert!(containers.is_empty(), "runtime state left: {containers:?}");
}
