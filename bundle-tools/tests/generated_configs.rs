//! Generated hostile configs: a runtime config.json and an image configuration with any one
//! field (or a whole subtree) replaced by arbitrary JSON. Parsing and converting them gives
//! a value or one clear error naming the file, never a panic.

use std::fs;

use bundle_tools::spec::{Overrides, default_spec, image_to_spec};
use bundle_tools::validate::parse_config;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path (object keys and array indexes) of `v`.
fn paths(v: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = prefix.clone();
                p.push(k.clone());
                paths(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                paths(c, p, out);
            }
        }
        _ => {}
    }
}

fn replace(v: &mut Value, path: &[String], with: Value) {
    match path.split_first() {
        None => *v = with,
        Some((head, rest)) => match v {
            Value::Object(m) => {
                if let Some(c) = m.get_mut(head) {
                    replace(c, rest, with)
                }
            }
            Value::Array(a) => {
                if let Some(c) = head.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    replace(c, rest, with)
                }
            }
            _ => {}
        },
    }
}

/// `base` with the field at a random path replaced by arbitrary JSON.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    let mut all = Vec::new();
    paths(&base, Vec::new(), &mut all);
    (prop::sample::select(all), any_json()).prop_map(move |(path, with)| {
        let mut v = base.clone();
        replace(&mut v, &path, with);
        v
    })
}

fn image_config() -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "1000:1000",
            "Env": ["PATH=/bin", "A=b"],
            "Entrypoint": ["/bin/sh"],
            "Cmd": ["-c", "echo hi"],
            "WorkingDir": "/work",
            "ExposedPorts": {"80/tcp": {}},
            "Labels": {"a": "b"},
            "StopSignal": "SIGTERM"
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
        "history": [{"created_by": "test"}]
    })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_runtime_config_parses_or_names_its_file(
        v in mutated(serde_json::to_value(default_spec()).unwrap())
    ) {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("config.json");
        fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
        if let Err(e) = parse_config(&file) {
            let line = e.to_string();
            prop_assert!(line.contains("config.json"), "{}", line);
            prop_assert!(!line.contains('\n'), "{}", line);
        }
    }

    #[test]
    fn any_image_config_converts_or_is_refused(v in mutated(image_config())) {
        let rootfs = tempfile::tempdir().unwrap();
        fs::create_dir_all(rootfs.path().join("etc")).unwrap();
        fs::write(rootfs.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        if let Ok(image) = serde_json::from_value(v) {
            let _ = image_to_spec(&image, rootfs.path(), &Overrides::default());
        }
    }
}
