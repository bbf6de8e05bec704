//! `list [--format table|json] [-q]`: every container under --root, like runc.

use std::os::unix::fs::MetadataExt;

use anyhow::Result;

use crate::cli::{Global, ListArgs, ListFormat};
use crate::container::{Container, OciState};

pub fn run(g: &Global, a: &ListArgs) -> Result<()> {
    let mut names: Vec<String> = match std::fs::read_dir(&g.root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    let mut rows = Vec::new();
    for id in names {
        // Half-created or unreadable entries are not containers (yet): skip them like runc.
        let Ok(c) = Container::load(&g.root, &id) else {
            continue;
        };
        let mut s = c.oci_state();
        s.owner = std::fs::metadata(&c.dir)
            .map(|m| owner_name(m.uid()))
            .unwrap_or_default();
        rows.push(s);
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(());
    }
    match a.format {
        ListFormat::Json => {
            // runc encodes a nil slice: `null` when there is nothing.
            if rows.is_empty() {
                println!("null");
            } else {
                println!("{}", serde_json::to_string(&rows)?);
            }
        }
        ListFormat::Table => print!("{}", table(&rows)),
    }
    Ok(())
}

fn owner_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("#{uid}"),
    }
}

/// Go's tabwriter as runc configures it (minwidth 12, padding 3, last column unpadded).
pub fn table(rows: &[OciState]) -> String {
    let mut cells: Vec<[String; 6]> =
        vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for r in rows {
        cells.push([
            r.id.clone(),
            r.pid.to_string(),
            r.status.clone(),
            r.bundle.display().to_string(),
            r.created.clone(),
            r.owner.clone(),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &cells {
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(row[i].chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for row in &cells {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}", row[i], w = *w));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_runc_layout() {
        let empty = table(&[]);
        assert_eq!(
            empty,
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
        let row = OciState {
            oci_version: "1.2.0".into(),
            id: "t1".into(),
            pid: 17213,
            status: "created".into(),
            bundle: "/tmp/rt/b".into(),
            rootfs: "/tmp/rt/b/rootfs".into(),
            created: "2026-11-23T18:51:20.666992222Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
        };
        // Captured from `runc list` on this machine.
        assert_eq!(
            table(&[row]),
            "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n\
             t1          17213       created     /tmp/rt/b   2026-11-23T18:51:20.666992222Z   root\n"
        );
    }
}
