//! Generated hostile runtime configs: runc's default spec with the fields the runtime checks
//! itself (hooks, seccomp, namespaces, id maps, time offsets, sysctls, scheduler, I/O
//! priority, personality, LSM labels) set to arbitrary JSON. `create`'s checks answer with a
//! plan or one line naming a field, never a panic. Nothing is created: the checks run before
//! any side effect.

use mocker_runtime::commands::create;
use oci_spec::runtime::Spec;
use proptest::prelude::*;
use serde_json::{Value, json};

/// JSON pointers of what the runtime validates beyond oci-spec's types.
const FIELDS: &[&str] = &[
    "/hooks",
    "/hooks/prestart",
    "/hooks/createRuntime/0",
    "/linux/seccomp",
    "/linux/seccomp/syscalls/0",
    "/linux/seccomp/syscalls/0/args",
    "/linux/namespaces",
    "/linux/namespaces/0",
    "/linux/uidMappings",
    "/linux/gidMappings",
    "/linux/timeOffsets",
    "/linux/sysctl",
    "/linux/personality",
    "/process/scheduler",
    "/process/ioPriority",
    "/process/apparmorProfile",
    "/linux/mountLabel",
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_NOTIFY",
            "SCMP_ARCH_X86",
            "user",
            "time",
            "mount",
            "/proc/self/ns/net",
            "kernel.domainname",
            "SCHED_FIFO",
            "IOPRIO_CLASS_RT",
            "LINUX32",
            "/bin/true",
            "relative",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "path",
                    "type",
                    "names",
                    "action",
                    "args",
                    "index",
                    "op",
                    "value",
                    "containerID",
                    "hostID",
                    "size",
                    "timeout",
                    "policy",
                    "priority",
                    "domain",
                    "flags",
                    "defaultAction",
                    "syscalls",
                    "listenerPath",
                    "secs",
                    "boottime",
                ]),
                inner,
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn runc_spec() -> Value {
    let mut v = serde_json::to_value(bundle_tools::spec::default_spec()).unwrap();
    v["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}]});
    v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": []}]});
    v
}

/// Set `pointer` (creating the last key if its parent exists) to `with`.
fn set(v: &mut Value, pointer: &str, with: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = with;
        return;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
        m.insert(key.to_string(), with);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_checks_of_create_never_panic(
        edits in prop::collection::vec((prop::sample::select(FIELDS), any_json()), 1..4)
    ) {
        let mut v = runc_spec();
        for (field, with) in edits {
            set(&mut v, field, with);
        }
        // What oci-spec's types reject is bundle-tools' one line; the rest goes to the checks.
        if let Ok(spec) = serde_json::from_value::<Spec>(v) {
            if let Err(e) = create::check(&spec, None) {
                let line = format!("{e:#}");
                prop_assert!(!line.is_empty() && !line.contains('\n'), "{}", line);
            }
        }
    }
}
