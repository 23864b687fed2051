//! The target file of a stack `regiondrill up` holds: every address on loopback, every link
//! on the stack's fault proxy (which speaks Toxiproxy's API), and node operations as
//! `regiondrill node OP NODE --control URL` commands that ask the holding process to act
//! (the nodes are its children, or its containers).

use super::UpOwner;
use crate::stack::Stack;
use crate::stack::topology::{NodeId, REGIONS, Role};
use std::fmt::Write as _;
use std::path::Path;

/// The text of the target file for `stack`, held by `owner`; `exe` is the `regiondrill`
/// binary the node commands run.
pub fn target_file(stack: &Stack, owner: &UpOwner, exe: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `regiondrill up` for {} ({} backend, process {}).\n\
         # `regiondrill run EXPERIMENT --target THIS_FILE` drills it; `regiondrill down THIS_FILE`\n\
         # removes it.\n",
        owner.experiment, owner.backend, owner.pid
    );
    out.push_str("allow_hosts = [\"127.0.0.1\"]\n\n");
    let _ = writeln!(
        out,
        "[toxiproxy]\napi = {}\n",
        quote(stack.proxy_client().url())
    );
    for link in stack.links() {
        let _ = writeln!(
            out,
            "[links.{}]\nproxy = {}\naddress = \"127.0.0.1:{}\"\n",
            quote(&link.spec.name),
            quote(link.link.name()),
            link.port
        );
    }
    for region in REGIONS {
        let mut lines = String::new();
        if let Some(url) = stack.app_url_for(region, region) {
            let _ = writeln!(lines, "app = {}", quote(&url));
        }
        if let Some(dsn) = stack.db_dsn(region) {
            let _ = writeln!(lines, "db = {}", quote(&dsn));
        }
        if let Some(port) = stack.port(&NodeId::new(region, Role::Router)) {
            // The region's router (HAProxy on Patroni's checks) follows the primary: what
            // database-only drills write through.
            let _ = writeln!(lines, "write_db = {}", quote(&crate::postgres::dsn(port)));
        }
        if let Some(url) = stack.cache_url(region) {
            let _ = writeln!(lines, "cache = {}", quote(&url));
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "[regions.{region}]\n{lines}");
        }
    }
    let exe = shell_quote(&exe.display().to_string());
    let nodes = stack.nodes().filter(|n| Role::ALL.contains(&n.role));
    for node in nodes.collect::<Vec<&NodeId>>() {
        let _ = writeln!(out, "[nodes.{node}]");
        for op in ["kill", "restart", "pause", "resume"] {
            let cmd = format!("{exe} node {op} {node} --control {}", owner.control);
            let _ = writeln!(out, "{op} = {}", quote(&cmd));
        }
        let _ = writeln!(out, "timeout = \"90s\"\n");
    }
    let _ = writeln!(
        out,
        "[up]\npid = {}\ncontrol = {}\nexperiment = {}\nbackend = {}",
        owner.pid,
        quote(&owner.control),
        quote(&owner.experiment),
        quote(&owner.backend)
    );
    out
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A word for `sh`.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
