//! The Kubernetes example (`stacks/k8s`), offline: every manifest passes the Kubernetes
//! schemas (`kubernetes-validate` from PyPI, which ships them), and the target file agrees
//! with the manifests — every host it names is a Service of the manifests and is allowed, every
//! port is a port of that Service, every link's proxy is a Toxiproxy proxy whose upstream is
//! the right Service, every users-link address is that proxy's listen port, every kubectl
//! command names workloads and label selectors that exist and belong to its node. The
//! manifests themselves are checked where the target relies on them: cross-region traffic
//! goes through Toxiproxy, the databases' `cluster_name` is their region.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::support::TempDir;

/// The version `stacks/deps.sh` installs, and the Kubernetes schemas validated against.
const VALIDATOR: &str = "kubernetes-validate==1.37.0";
const KUBERNETES: &str = "1.30.0";
const NAMESPACE: &str = "regiondrill";
const DOMAIN: &str = ".regiondrill.svc.cluster.local";
const TARGET: &str = "stacks/k8s/target.toml";
const REGIONS: [&str; 2] = ["us", "eu"];
const NODES: [&str; 6] = ["us-db", "eu-db", "us-cache", "eu-cache", "us-app", "eu-app"];
/// regiondrill's links and the node each one leads to (its proxy's upstream).
const LINKS: [(&str, &str); 9] = [
    ("replication", "us-db"),
    ("eu-app-to-us-db", "us-db"),
    ("us-app-to-eu-db", "eu-db"),
    ("us-users-to-eu-app", "eu-app"),
    ("eu-users-to-us-app", "us-app"),
    ("us-monitor-to-eu-db", "eu-db"),
    ("eu-monitor-to-us-db", "us-db"),
    ("us-app-to-eu-cache", "eu-cache"),
    ("eu-app-to-us-cache", "us-cache"),
];
/// Pods that must reach the other region through a given proxy (not only may).
const MUST_CROSS: [(&str, &str); 2] = [("eu-db", "replication"), ("eu-app", "eu-app-to-us-db")];

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every `.yaml`/`.yml` file under `stacks/k8s`, sorted, as (path from the repository root, text).
fn manifest_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&repo().join("stacks/k8s"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(repo()).unwrap().display().to_string();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// One Kubernetes object and the file it is in.
struct Object {
    file: String,
    v: Value,
}

impl Object {
    fn kind(&self) -> &str {
        self.v["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.v["metadata"]["name"].as_str().unwrap_or("")
    }
    fn at(&self) -> String {
        format!("{}: {} {}", self.file, self.kind(), self.name())
    }
    /// The pod template of a workload.
    fn template(&self) -> Option<&Value> {
        matches!(self.kind(), "Deployment" | "StatefulSet" | "Job")
            .then(|| &self.v["spec"]["template"])
    }
}

struct Manifests {
    objects: Vec<Object>,
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Every string in a JSON value (env values, args, commands, ...).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The Services a string names by cluster DNS name, each with the port named beside it
/// (`host:port`, or `host=… port=…` in a key/value DSN) if any.
fn service_refs(s: &str) -> Vec<(String, Option<u16>)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find(DOMAIN) {
        let end = from + i;
        let start = s[..end]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map_or(0, |j| j + 1);
        let rest = &s[end + DOMAIN.len()..];
        let port = if let Some(p) = rest.strip_prefix(':') {
            p.split(|c: char| !c.is_ascii_digit()).next()
        } else if rest.starts_with(' ') || rest.is_empty() {
            rest.split_whitespace()
                .take_while(|t| !t.starts_with("host="))
                .find_map(|t| t.strip_prefix("port="))
        } else {
            None
        };
        out.push((s[start..end].to_string(), port.and_then(|p| p.parse().ok())));
        from = end + DOMAIN.len();
    }
    out
}

/// Host and port of a URL (`scheme://[user[:password]@]host:port[/path]`) or an address
/// (`host:port`).
fn host_port(s: &str) -> Option<(String, u16)> {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = hostport.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

/// A dotted TOML key, each part quoted unless it is letters, digits and underscores (so
/// `links."eu-app-to-us-db".proxy`, as the target file writes it).
fn key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                p.to_string()
            } else {
                format!("\"{p}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A Toxiproxy proxy of the ConfigMap.
#[derive(Deserialize)]
struct Proxy {
    name: String,
    listen: String,
    upstream: String,
}

impl Manifests {
    fn parse(files: &[(String, String)]) -> Manifests {
        let mut objects = Vec::new();
        for (file, text) in files {
            for doc in serde_norway::Deserializer::from_str(text) {
                let v = Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{file}: not a YAML document of objects: {e}"));
                if !v.is_null() {
                    objects.push(Object {
                        file: file.clone(),
                        v,
                    });
                }
            }
        }
        Manifests { objects }
    }

    fn load() -> Manifests {
        Manifests::parse(&manifest_files())
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name)
    }

    fn workloads(&self) -> impl Iterator<Item = (&Object, &Value)> {
        self.objects
            .iter()
            .filter_map(|o| o.template().map(|t| (o, t)))
    }

    /// The workloads whose pods a label selector selects.
    fn selected(&self, selector: &BTreeMap<String, String>) -> Vec<&Object> {
        self.workloads()
            .filter(|(_, t)| selects(selector, &labels(&t["metadata"]["labels"])))
            .map(|(o, _)| o)
            .collect()
    }

    fn service(&self, name: &str) -> Option<&Object> {
        self.find("Service", name)
    }

    fn service_ports(&self, name: &str) -> Vec<(u16, Value)> {
        self.service(name)
            .and_then(|s| s.v["spec"]["ports"].as_array())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        let port = p["port"].as_u64()? as u16;
                        Some((port, p["targetPort"].clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn region_of_service(&self, name: &str) -> Option<String> {
        self.service(name).and_then(|s| {
            s.v["metadata"]["labels"]["regiondrill/region"]
                .as_str()
                .map(str::to_string)
        })
    }

    /// The proxies of the ConfigMap `toxiproxy`, from the file the Deployment's `-config`
    /// names.
    fn proxies(&self, problems: &mut Vec<String>) -> Vec<Proxy> {
        let Some(cm) = self.find("ConfigMap", "toxiproxy") else {
            problems.push("stacks/k8s: no ConfigMap toxiproxy (the proxies)".into());
            return Vec::new();
        };
        let Some(deploy) = self.find("Deployment", "toxiproxy") else {
            problems.push("stacks/k8s: no Deployment toxiproxy".into());
            return Vec::new();
        };
        let pod = &deploy.v["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let config = container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a.as_str()?.strip_prefix("-config="));
        let Some(config) = config else {
            problems.push(format!("{}: no -config= argument", deploy.at()));
            return Vec::new();
        };
        let (dir, file) = config.rsplit_once('/').unwrap_or(("", config));
        let mounted = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["mountPath"].as_str() == Some(dir))
            .filter_map(|m| m["name"].as_str())
            .any(|vol| {
                pod["volumes"].as_array().into_iter().flatten().any(|v| {
                    v["name"].as_str() == Some(vol) && v["configMap"]["name"] == "toxiproxy"
                })
            });
        if !mounted {
            problems.push(format!(
                "{}: -config={config} is not in a volume of the ConfigMap toxiproxy",
                deploy.at()
            ));
        }
        let Some(json) = cm.v["data"][file].as_str() else {
            problems.push(format!("{}: no key {file} (-config={config})", cm.at()));
            return Vec::new();
        };
        serde_json::from_str(json).unwrap_or_else(|e| {
            problems.push(format!("{}: {file} is not a list of proxies: {e}", cm.at()));
            Vec::new()
        })
    }
}

fn listen_port(p: &Proxy) -> Option<u16> {
    p.listen.rsplit_once(':')?.1.parse().ok()
}

/// Checks a Service reference `svc:port` made by `what`: the Service exists and has that port.
fn check_service_port(
    m: &Manifests,
    what: &str,
    svc: &str,
    port: u16,
    problems: &mut Vec<String>,
) -> bool {
    if m.service(svc).is_none() {
        problems.push(format!(
            "{what}: no Service {svc} in the manifests (stacks/k8s/*.yaml)"
        ));
        return false;
    }
    if !m.service_ports(svc).iter().any(|(p, _)| *p == port) {
        let file = &m.service(svc).unwrap().file;
        problems.push(format!(
            "{what}: port {port} is not a port of Service {svc} ({file} has {:?})",
            m.service_ports(svc)
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
        ));
        return false;
    }
    true
}

/// The manifests alone: namespace, labels, resources, probes, Services that select pods,
/// the databases' settings, and cross-region traffic only through Toxiproxy.
fn check_manifests(m: &Manifests, problems: &mut Vec<String>) {
    if m.find("Namespace", NAMESPACE).is_none() {
        problems.push(format!("stacks/k8s: no Namespace {NAMESPACE}"));
    }
    for o in &m.objects {
        if o.kind() != "Namespace" && o.v["metadata"]["namespace"] != NAMESPACE {
            problems.push(format!("{}: metadata.namespace is not {NAMESPACE}", o.at()));
        }
    }
    for (o, t) in m.workloads() {
        let l = labels(&t["metadata"]["labels"]);
        for label in ["app.kubernetes.io/name", "regiondrill/region"] {
            if !l.contains_key(label) {
                problems.push(format!("{}: the pod template has no label {label}", o.at()));
            }
        }
        let spec = &t["spec"];
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                let cname = c["name"].as_str().unwrap_or("?");
                for (part, res) in [("requests", "cpu"), ("requests", "memory")]
                    .into_iter()
                    .chain([("limits", "cpu"), ("limits", "memory")])
                {
                    if c["resources"][part][res].is_null() {
                        problems.push(format!(
                            "{}: container {cname} has no resources.{part}.{res}",
                            o.at()
                        ));
                    }
                }
                if list == "containers" && o.kind() != "Job" && c["readinessProbe"].is_null() {
                    problems.push(format!(
                        "{}: container {cname} has no readinessProbe",
                        o.at()
                    ));
                }
            }
        }
    }
    for svc in m.objects.iter().filter(|o| o.kind() == "Service") {
        let selector = labels(&svc.v["spec"]["selector"]);
        let pods = m.selected(&selector);
        if pods.is_empty() {
            problems.push(format!("{}: its selector selects no pod", svc.at()));
        }
        // A named targetPort must be a named port of the pods it selects.
        for (port, target) in m.service_ports(svc.name()) {
            let Some(target) = target.as_str() else {
                continue;
            };
            let named = pods.iter().all(|w| {
                w.v["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .any(|p| p["name"] == target)
            });
            if !named {
                problems.push(format!(
                    "{}: port {port} targets {target:?}, a port its pods do not name",
                    svc.at()
                ));
            }
        }
    }
    for region in REGIONS {
        let Some(db) = m.find("StatefulSet", &format!("{region}-db")) else {
            problems.push(format!("stacks/k8s: no StatefulSet {region}-db"));
            continue;
        };
        let c = &db.v["spec"]["template"]["spec"]["containers"][0];
        if c["image"] != "postgres:15" {
            problems.push(format!("{}: image is not postgres:15", db.at()));
        }
        let mut args = Vec::new();
        strings(&c["args"], &mut args);
        for setting in [format!("cluster_name={region}"), "wal_level=replica".into()] {
            if !args.contains(&setting) {
                problems.push(format!(
                    "{}: the postgres args do not set {setting} (the app's committed_by reads cluster_name)",
                    db.at()
                ));
            }
        }
    }

    // Cross-region traffic only through Toxiproxy: a pod of region R names Services of R,
    // and Toxiproxy only at the listen port of a proxy that leaves R for the other region.
    let proxies = m.proxies(problems);
    for (o, t) in m.workloads() {
        let Some(region) = t["metadata"]["labels"]["regiondrill/region"].as_str() else {
            continue;
        };
        if !REGIONS.contains(&region) {
            continue;
        }
        let mut texts = Vec::new();
        strings(&t["spec"], &mut texts);
        let mut crossed = BTreeSet::new();
        for (svc, port) in texts.iter().flat_map(|s| service_refs(s)) {
            if svc == "toxiproxy" {
                let proxy =
                    port.and_then(|port| proxies.iter().find(|p| listen_port(p) == Some(port)));
                let Some(proxy) = proxy else {
                    problems.push(format!(
                        "{}: names toxiproxy{DOMAIN} at port {port:?}, the listen port of no proxy",
                        o.at()
                    ));
                    continue;
                };
                let upstream = host_port(&proxy.upstream)
                    .and_then(|(h, _)| h.strip_suffix(DOMAIN).map(str::to_string))
                    .and_then(|svc| m.region_of_service(&svc));
                if upstream.as_deref() == Some(region) || upstream.is_none() {
                    problems.push(format!(
                        "{}: a pod of region {region} uses proxy {} whose upstream {} is not in the other region",
                        o.at(),
                        proxy.name,
                        proxy.upstream
                    ));
                }
                crossed.insert(proxy.name.clone());
            } else if m.region_of_service(&svc).as_deref() != Some(region) {
                problems.push(format!(
                    "{}: a pod of region {region} reaches Service {svc} directly, not through Toxiproxy",
                    o.at()
                ));
            }
        }
        for (workload, proxy) in MUST_CROSS {
            if o.name() == workload && !crossed.contains(proxy) {
                problems.push(format!(
                    "{}: does not reach the other region through Toxiproxy's proxy {proxy}",
                    o.at()
                ));
            }
        }
    }
}

/// The words of a shell command, quotes, `$(`, `)` and `;` taken for spaces: enough for
/// the commands of target.toml, whose arguments hold no spaces.
fn words(cmd: &str) -> Vec<String> {
    cmd.split(|c: char| c.is_whitespace() || "\"'();$".contains(c))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks one node operation: every kubectl call is in the namespace, every workload it
/// names is the node's, every label selector selects the node's pods and only them; a kill
/// scales the node to 0 (a deleted pod alone comes back at once) and a restart to 1.
fn check_command(m: &Manifests, node: &str, op: &str, cmd: &str, problems: &mut Vec<String>) {
    let at = format!("{TARGET}: {}", key(&["nodes", node, op]));
    let w = words(cmd);
    let workload = m
        .find("StatefulSet", node)
        .or_else(|| m.find("Deployment", node));
    for (i, word) in w.iter().enumerate() {
        if word.ends_with("kubectl")
            && (w.get(i + 1).map(String::as_str) != Some("-n")
                || w.get(i + 2).map(String::as_str) != Some(NAMESPACE))
        {
            problems.push(format!("{at}: a kubectl call without -n {NAMESPACE}"));
        }
        let named = word.split_once('/').and_then(|(kind, name)| match kind {
            "statefulset" | "statefulsets" | "sts" => Some(("StatefulSet", name)),
            "deployment" | "deployments" | "deploy" => Some(("Deployment", name)),
            _ => None,
        });
        if let Some((kind, name)) = named {
            if m.find(kind, name).is_none() {
                problems.push(format!("{at}: {word}: no {kind} {name} in the manifests"));
            } else if name != node {
                problems.push(format!("{at}: {word} is not node {node}'s workload"));
            }
        }
        let selector = if word == "-l" || word == "--selector" {
            w.get(i + 1).cloned()
        } else {
            word.strip_prefix("--selector=")
                .or_else(|| word.strip_prefix("-l="))
                .map(str::to_string)
        };
        if let Some(selector) = selector {
            let parsed: Option<BTreeMap<String, String>> = selector
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once("==").or_else(|| kv.split_once('='))?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect();
            let Some(parsed) = parsed else {
                problems.push(format!(
                    "{at}: -l {selector}: only k=v,k=v selectors are checked here"
                ));
                continue;
            };
            let picked: Vec<_> = m.selected(&parsed).iter().map(|o| o.at()).collect();
            let mine = workload.map(|o| o.at());
            if picked.is_empty() {
                problems.push(format!(
                    "{at}: -l {selector} selects no pod of the manifests"
                ));
            } else if picked.len() != 1 || Some(&picked[0]) != mine.as_ref() {
                problems.push(format!(
                    "{at}: -l {selector} selects the pods of {picked:?}, not only node {node}'s"
                ));
            }
        }
    }
    let scales_to = |n: u32| {
        w.iter().any(|x| x == "scale") && w.iter().any(|x| *x == format!("--replicas={n}"))
    };
    if op == "kill" && !scales_to(0) {
        problems.push(format!(
            "{at}: does not scale {node} to 0 (its controller would restart a deleted pod at once)"
        ));
    }
    if op == "restart" && !scales_to(1) {
        problems.push(format!("{at}: does not scale {node} back to 1"));
    }
}

/// The target file against the manifests. Every problem found, each naming the file and key.
fn check_target(text: &str, m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let target: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => return vec![format!("{TARGET}: not TOML: {e}")],
    };
    let table = |v: Option<&toml::Value>| v.and_then(|v| v.as_table()).cloned();
    let allow: BTreeSet<String> = target
        .get("allow_hosts")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if allow.is_empty() {
        problems.push(format!("{TARGET}: allow_hosts is missing or empty"));
    }
    for host in &allow {
        let svc = host.strip_suffix(DOMAIN);
        if svc.is_none_or(|s| m.service(s).is_none()) {
            problems.push(format!(
                "{TARGET}: allow_hosts: {host} is not a Service of the manifests (<svc>{DOMAIN})"
            ));
        }
    }
    for k in target.keys() {
        if !["allow_hosts", "toxiproxy", "links", "regions", "nodes"].contains(&k.as_str()) {
            problems.push(format!("{TARGET}: {k}: not a key of the target format"));
        }
    }

    // Each endpoint: a Service of the manifests, a port of it, an allowed host. Returns the
    // Service and port.
    let endpoint = |what: String, value: &str, problems: &mut Vec<String>| {
        let Some((host, port)) = host_port(value) else {
            problems.push(format!("{what} = {value:?}: no host:port in it"));
            return None;
        };
        if !allow.contains(&host) {
            problems.push(format!("{what}: host {host} is not in allow_hosts"));
        }
        let Some(svc) = host.strip_suffix(DOMAIN) else {
            problems.push(format!(
                "{what}: host {host} is not a Service name <svc>{DOMAIN}"
            ));
            return None;
        };
        check_service_port(m, &what, svc, port, problems).then(|| (svc.to_string(), port))
    };

    match table(target.get("toxiproxy")) {
        None => problems.push(format!(
            "{TARGET}: no [toxiproxy]: no network fault could run"
        )),
        Some(t) => {
            for k in t.keys().filter(|k| *k != "api") {
                problems.push(format!(
                    "{TARGET}: toxiproxy.{k}: not a key of the target format"
                ));
            }
            let what = format!("{TARGET}: toxiproxy.api");
            match t.get("api").and_then(|v| v.as_str()) {
                None => problems.push(format!("{what} is missing")),
                Some(api) => {
                    if let Some((svc, port)) = endpoint(what.clone(), api, &mut problems)
                        && (svc != "toxiproxy" || port != 8474)
                    {
                        problems.push(format!(
                            "{what}: {svc}:{port} is not Toxiproxy's API (toxiproxy:8474)"
                        ));
                    }
                }
            }
        }
    }

    let proxies = m.proxies(&mut problems);
    let config_map = m
        .find("ConfigMap", "toxiproxy")
        .map_or("ConfigMap toxiproxy".into(), Object::at);
    let toxiproxy_ports = m.service_ports("toxiproxy");
    for p in &proxies {
        let Some(listen) = listen_port(p) else {
            problems.push(format!(
                "{config_map}: proxy {}: listen {:?} has no port",
                p.name, p.listen
            ));
            continue;
        };
        if !toxiproxy_ports
            .iter()
            .any(|(port, target)| *port == listen && target.as_u64() == Some(listen.into()))
        {
            problems.push(format!(
                "{config_map}: proxy {} listens on {listen}, which Service toxiproxy does not expose (port and targetPort {listen})",
                p.name
            ));
        }
    }
    let links = table(target.get("links")).unwrap_or_default();
    for (name, _) in LINKS {
        if !links.contains_key(name) {
            problems.push(format!(
                "{TARGET}: no {}: drills of link {name} could not run",
                key(&["links", name])
            ));
        }
    }
    for (name, link) in &links {
        let at = format!("{TARGET}: {}", key(&["links", name.as_str()]));
        let Some(expected) = LINKS
            .iter()
            .find(|(l, _)| *l == name.as_str())
            .map(|(_, to)| *to)
        else {
            problems.push(format!("{at}: {name} is not one of regiondrill's links"));
            continue;
        };
        let Some(link) = link.as_table() else {
            problems.push(format!("{at}: not a table"));
            continue;
        };
        for k in link
            .keys()
            .filter(|k| !["proxy", "address"].contains(&k.as_str()))
        {
            problems.push(format!("{at}.{k}: not a key of the target format"));
        }
        let Some(proxy_name) = link.get("proxy").and_then(|v| v.as_str()) else {
            problems.push(format!("{at}.proxy is missing"));
            continue;
        };
        let Some(proxy) = proxies.iter().find(|p| p.name == proxy_name) else {
            problems.push(format!(
                "{at}.proxy = {proxy_name:?}: no such proxy in the ConfigMap toxiproxy (stacks/k8s/30-toxiproxy.yaml)"
            ));
            continue;
        };
        let what = format!(
            "{at}.proxy = {proxy_name:?}: its upstream {:?}",
            proxy.upstream
        );
        match host_port(&proxy.upstream) {
            Some((host, port)) => match host.strip_suffix(DOMAIN) {
                Some(svc) => {
                    if check_service_port(m, &what, svc, port, &mut problems) && svc != expected {
                        problems.push(format!(
                            "{what} is Service {svc}; link {name} leads to {expected}"
                        ));
                    }
                }
                None => problems.push(format!("{what} is not a Service name <svc>{DOMAIN}")),
            },
            None => problems.push(format!("{what} has no host:port")),
        }
        let users = name.contains("-users-to-");
        match (link.get("address").and_then(|v| v.as_str()), users) {
            (Some(address), true) => {
                let what = format!("{at}.address");
                if let Some((svc, port)) = endpoint(what.clone(), address, &mut problems)
                    && (svc != "toxiproxy" || Some(port) != listen_port(proxy))
                {
                    problems.push(format!(
                        "{what} = {address:?}: not Toxiproxy at proxy {proxy_name}'s listen port ({})",
                        proxy.listen
                    ));
                }
            }
            (None, true) => problems.push(format!(
                "{at}.address is missing: the harness reaches a users link's proxy there"
            )),
            (Some(_), false) => problems.push(format!(
                "{at}.address: only users links have one (the app's traffic reaches this proxy itself)"
            )),
            (None, false) => {}
        }
    }

    let regions = table(target.get("regions")).unwrap_or_default();
    for region in regions.keys().filter(|r| !REGIONS.contains(&r.as_str())) {
        problems.push(format!(
            "{TARGET}: regions.{region}: the stack has only us and eu"
        ));
    }
    for region in REGIONS {
        let Some(r) = table(regions.get(region)) else {
            problems.push(format!("{TARGET}: no [regions.{region}]"));
            continue;
        };
        for k in r
            .keys()
            .filter(|k| !["app", "db", "cache"].contains(&k.as_str()))
        {
            problems.push(format!(
                "{TARGET}: regions.{region}.{k}: not a key of the target format"
            ));
        }
        for (part, schemes) in [
            ("app", &["http"][..]),
            ("db", &["postgres", "postgresql"][..]),
            ("cache", &["redis"][..]),
        ] {
            let what = format!("{TARGET}: regions.{region}.{part}");
            let Some(value) = r.get(part).and_then(|v| v.as_str()) else {
                problems.push(format!("{what} is missing"));
                continue;
            };
            let scheme = value.split_once("://").map(|(s, _)| s);
            if !scheme.is_some_and(|s| schemes.contains(&s)) {
                problems.push(format!("{what} = {value:?}: not a {}:// URL", schemes[0]));
            }
            let node = format!("{region}-{part}");
            if let Some((svc, _)) = endpoint(what.clone(), value, &mut problems)
                && svc != node
            {
                problems.push(format!(
                    "{what}: Service {svc}, not {node} (region {region}'s {part})"
                ));
            }
        }
    }

    let nodes = table(target.get("nodes")).unwrap_or_default();
    for (node, ops) in &nodes {
        let at = format!("{TARGET}: {}", key(&["nodes", node.as_str()]));
        if !NODES.contains(&node.as_str()) {
            problems.push(format!("{at}: not a node of the stack ({NODES:?})"));
            continue;
        }
        let Some(ops) = ops.as_table() else {
            problems.push(format!("{at}: not a table"));
            continue;
        };
        for (op, value) in ops {
            let Some(value) = value.as_str() else {
                problems.push(format!("{at}.{op}: not a string"));
                continue;
            };
            match op.as_str() {
                "timeout" => {
                    if let Err(e) = humantime::parse_duration(value) {
                        problems.push(format!("{at}.timeout = {value:?}: {e}"));
                    }
                }
                "kill" | "restart" | "pause" | "resume" => {
                    check_command(m, node, op, value, &mut problems)
                }
                _ => problems.push(format!("{at}.{op}: not a key of the target format")),
            }
        }
    }
    problems
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// Runs kubernetes-validate (strict: unknown fields are errors) on files; fails the test if
/// it is not installed.
fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    assert!(
        on_path("kubernetes-validate"),
        "kubernetes-validate is not installed, so the Kubernetes manifests cannot be validated: \
         run stacks/deps.sh (or pip install {VALIDATOR})"
    );
    let out = Command::new("kubernetes-validate")
        .args(["--kubernetes-version", KUBERNETES, "--strict"])
        .args(files)
        .output()
        .expect("running kubernetes-validate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    let deps = std::fs::read_to_string(repo().join("stacks/deps.sh")).unwrap();
    assert!(
        deps.contains(VALIDATOR),
        "stacks/deps.sh does not install {VALIDATOR}, the version this test pins"
    );
    let files = manifest_files();
    assert!(files.len() >= 5, "stacks/k8s: manifests missing: {files:?}");
    let paths: Vec<PathBuf> = files.iter().map(|(f, _)| repo().join(f)).collect();
    let (ok, output) = kubernetes_validate(&paths);
    assert!(
        ok,
        "kubernetes-validate rejects manifests of stacks/k8s (Kubernetes {KUBERNETES}):\n{output}"
    );
    // Every object was validated, not skipped (an unknown kind is only a warning).
    let objects = Manifests::load().objects;
    let passed = output.matches("passed for resource").count();
    assert_eq!(
        passed,
        objects.len(),
        "kubernetes-validate passed {passed} of the {} objects of stacks/k8s:\n{output}",
        objects.len()
    );
}

#[test]
fn kubernetes_validate_rejects_a_broken_manifest() {
    let dir = TempDir::new("k8s-broken");
    let broken = dir.0.join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\n  namespace: regiondrill\n\
         spec:\n  replicas: \"two\"\n  selector:\n    matchLabels: {app: b}\n  template:\n    \
         metadata:\n      labels: {app: b}\n    spec:\n      containers:\n        - name: b\n          \
         image: redis:7\n",
    )
    .unwrap();
    let (ok, output) = kubernetes_validate(&[broken]);
    assert!(
        !ok && output.contains("replicas"),
        "kubernetes-validate accepted replicas: \"two\":\n{output}"
    );
}

#[test]
fn the_manifests_are_complete_and_cross_regions_only_through_toxiproxy() {
    let mut problems = Vec::new();
    check_manifests(&Manifests::load(), &mut problems);
    assert!(problems.is_empty(), "stacks/k8s:\n{}", problems.join("\n"));
}

#[test]
fn the_target_file_matches_the_manifests() {
    let text = std::fs::read_to_string(repo().join(TARGET)).unwrap();
    let problems = check_target(&text, &Manifests::load());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The cross-checks catch a mismatch and name the file and key of it.
#[test]
fn the_cross_checks_name_what_mismatches() {
    let text = std::fs::read_to_string(repo().join(TARGET)).unwrap();
    let m = Manifests::load();
    for (from, to, expected) in [
        (
            "us-db.regiondrill.svc.cluster.local:5432/postgres",
            "us-db.regiondrill.svc.cluster.local:5433/postgres",
            "target.toml: regions.us.db: port 5433 is not a port of Service us-db",
        ),
        (
            "proxy = \"replication\"",
            "proxy = \"replicaton\"",
            "target.toml: links.replication.proxy = \"replicaton\": no such proxy",
        ),
        (
            "toxiproxy.regiondrill.svc.cluster.local:21003",
            "toxiproxy.regiondrill.svc.cluster.local:21004",
            "target.toml: links.\"us-users-to-eu-app\".address",
        ),
        (
            "    \"eu-cache.regiondrill.svc.cluster.local\",\n",
            "",
            "target.toml: regions.eu.cache: host eu-cache.regiondrill.svc.cluster.local is not in allow_hosts",
        ),
        (
            "app.kubernetes.io/name=redis,regiondrill/region=eu",
            "app.kubernetes.io/name=redis,regiondrill/region=us",
            "target.toml: nodes.\"eu-cache\".kill: -l app.kubernetes.io/name=redis,regiondrill/region=us selects the pods of",
        ),
        (
            "scale statefulset/eu-db --replicas=0",
            "scale statefulset/eu-dbs --replicas=0",
            "target.toml: nodes.\"eu-db\".kill: statefulset/eu-dbs: no StatefulSet eu-dbs",
        ),
    ] {
        assert!(text.contains(from), "{TARGET} no longer contains {from:?}");
        let problems = check_target(&text.replacen(from, to, 1), &m);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "changing {from:?} to {to:?}: expected a problem with {expected:?}, got {problems:#?}"
        );
    }

    // A manifest change: the eu app writing to the us primary directly.
    let mut files = manifest_files();
    let app = files
        .iter_mut()
        .find(|(f, _)| f.ends_with("40-app.yaml"))
        .expect("stacks/k8s/40-app.yaml");
    let from = "host=toxiproxy.regiondrill.svc.cluster.local port=21001";
    assert!(
        app.1.contains(from),
        "40-app.yaml no longer contains {from:?}"
    );
    app.1 = app
        .1
        .replace(from, "host=us-db.regiondrill.svc.cluster.local port=5432");
    let mut problems = Vec::new();
    check_manifests(&Manifests::parse(&files), &mut problems);
    let expected = "stacks/k8s/40-app.yaml: Deployment eu-app: a pod of region eu reaches Service us-db directly";
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected {expected:?}, got {problems:#?}"
    );
}

/// The example's target file is one regiondrill's own loader accepts, and it offers what the
/// shipped region-loss drills need (kill and restart of every node of a region, the
/// replication link): nothing is refused before the drill would run.
#[test]
fn the_target_file_loads_and_can_run_the_shipped_region_loss_drills() {
    let path = repo().join("stacks/k8s/target.toml");
    let target = regiondrill::target::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(target.has_app());
    for file in [
        "experiments/ap-async-region-loss.toml",
        "experiments/ap-async-partition-then-region-loss.toml",
    ] {
        let exp = regiondrill::experiment::load(&repo().join(file)).unwrap();
        let refused = regiondrill::target::needs::refusals(&target, &exp);
        assert!(refused.is_empty(), "{file}: {refused:?}");
    }
}
