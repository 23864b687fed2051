//! What Patroni, etcd, HAProxy and pg_auto_failover's `pg_autoctl` are told, the same on
//! every backend: only where each listens, keeps its files and trusts connections from
//! differs ([`MemberHost`], [`AutoctlHost`]).
//!
//! Every address a member is given for another node is the address the plan wired (a link
//! on the fault proxy when the node is in another region), so faults on the links reach
//! Patroni's own traffic too. Patroni is told that its etcd addresses are proxies
//! (`use_proxies`): otherwise it asks etcd for its members' advertised client URLs and talks
//! to those directly, around the link, once its cache refreshes.

use crate::stack::plan::{Keeper, PatroniMember};

/// Where one Patroni member runs, as its backend places it.
#[derive(Debug, Clone)]
pub struct MemberHost<'a> {
    /// Address PostgreSQL and the REST API listen on (`127.0.0.1` natively, `0.0.0.0` in a
    /// container).
    pub listen: &'a str,
    /// PostgreSQL's port.
    pub pg_port: u16,
    /// The REST API's port.
    pub api_port: u16,
    /// The member's directory (PostgreSQL's data in `pgdata` below it, and `pgpass`).
    pub dir: &'a str,
    /// Where `initdb`, `pg_ctl`, `pg_rewind` and `pg_basebackup` are.
    pub bin_dir: &'a str,
    /// The network `pg_hba.conf` trusts (`127.0.0.1/32` natively, any in a container).
    pub trust: &'a str,
}

/// A member's `patroni.yml`, as JSON (which YAML reads as is).
pub fn patroni_config(member: &PatroniMember, host: &MemberHost) -> String {
    let s = &member.settings;
    let mut parameters = serde_json::Map::new();
    for (k, v) in crate::postgres::cluster_conf() {
        parameters.insert(
            k,
            serde_json::Value::String(v.trim_matches('\'').to_string()),
        );
    }
    // TCP only, as for every native PostgreSQL (a long run directory would overflow a socket
    // path); Patroni then connects to `listen`.
    parameters.insert("unix_socket_directories".into(), "".into());
    let hba = [
        format!("host all all {} trust", host.trust),
        format!("host replication all {} trust", host.trust),
    ];
    let user = serde_json::json!({"username": crate::postgres::SUPERUSER});
    let config = serde_json::json!({
        "scope": "regiondrill",
        "name": member.name,
        "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
        "restapi": {
            "listen": format!("{}:{}", host.listen, host.api_port),
            "connect_address": format!("{}:{}", member.api_connect.0, member.api_connect.1),
        },
        "etcd3": {
            "hosts": [format!("{}:{}", member.dcs.0, member.dcs.1)],
            "protocol": "http",
            "use_proxies": true,
        },
        "bootstrap": {
            "dcs": {
                "ttl": s.ttl,
                "loop_wait": s.loop_wait,
                "retry_timeout": s.retry_timeout,
                "maximum_lag_on_failover": s.maximum_lag_on_failover,
                "synchronous_mode": s.synchronous_mode,
                "synchronous_mode_strict": s.synchronous_mode_strict,
                "failsafe_mode": s.failsafe_mode,
                "postgresql": {
                    "use_pg_rewind": s.use_pg_rewind,
                    "use_slots": true,
                    "parameters": parameters,
                },
            },
            "initdb": [
                {"encoding": "UTF8"}, {"locale": "C"}, {"wal-segsize": "1"}, "no-sync",
                {"auth": "trust"},
            ],
        },
        "postgresql": {
            "listen": format!("{}:{}", host.listen, host.pg_port),
            "connect_address": format!("{}:{}", member.pg_connect.0, member.pg_connect.1),
            "data_dir": format!("{}/pgdata", host.dir),
            "bin_dir": host.bin_dir,
            "pgpass": format!("{}/pgpass", host.dir),
            "authentication": {"superuser": user, "replication": user, "rewind": user},
            // Patroni forces cluster_name to the scope on every member: the app names the
            // committing database by this instead (stacks/app/README.md, `committed_by`).
            "parameters": {"unix_socket_directories": "", "regiondrill.node": member.name},
            "pg_hba": hba,
        },
    });
    serde_json::to_string_pretty(&config).expect("static JSON")
}

/// etcd's arguments: one member `name` keeping its data in `data_dir`, serving clients on
/// `listen`:`port` (advertised as `advertise`) and peers on 127.0.0.1:`peer_port` (a
/// one-member cluster has no peer to reach it).
pub fn etcd_args(
    name: &str,
    data_dir: &str,
    listen: &str,
    port: u16,
    advertise: &(String, u16),
    peer_port: u16,
) -> Vec<String> {
    let peer = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        name.into(),
        "--data-dir".into(),
        data_dir.into(),
        "--listen-client-urls".into(),
        format!("http://{listen}:{port}"),
        "--advertise-client-urls".into(),
        format!("http://{}:{}", advertise.0, advertise.1),
        "--listen-peer-urls".into(),
        peer.clone(),
        "--initial-advertise-peer-urls".into(),
        peer.clone(),
        "--initial-cluster".into(),
        format!("{name}={peer}"),
        "--log-level".into(),
        "warn".into(),
    ]
}

/// Where one `pg_autoctl` node (monitor or keeper) runs, as its backend places it.
#[derive(Debug, Clone)]
pub struct AutoctlHost<'a> {
    /// Its PostgreSQL's data directory.
    pub pgdata: &'a str,
    /// `pg_ctl`, which pg_autoctl runs PostgreSQL with.
    pub pg_ctl: &'a str,
    /// The port its PostgreSQL listens on (a keeper registers it as is).
    pub port: u16,
    /// A keeper's PostgreSQL `listen_addresses` (`127.0.0.1` natively, `*` in a container;
    /// the monitor keeps pg_autoctl's default).
    pub listen: &'a str,
    /// Where a keeper reaches its own PostgreSQL (`--pghost`), never through a link.
    pub local: &'a str,
}

/// The arguments of pg_auto_failover's monitor (`pg_autoctl create monitor --run`), after
/// `pg_autoctl`, known as `hostname`. HBA rules stay the cluster's own (`--skip-pg-hba`: the
/// backend makes them trust where connections come from, through a link or not).
pub fn monitor_args(host: &AutoctlHost, hostname: &str) -> Vec<String> {
    [
        "create",
        "monitor",
        "--pgdata",
        host.pgdata,
        "--pgport",
        &host.port.to_string(),
        "--pgctl",
        host.pg_ctl,
        "--hostname",
        hostname,
        "--no-ssl",
        "--skip-pg-hba",
        "--run",
    ]
    .map(String::from)
    .to_vec()
}

/// The arguments of a keeper (`pg_autoctl create postgres --run`), after `pg_autoctl`:
/// registered at `keeper.hostname`, whose port must be the one its PostgreSQL listens on
/// (pg_auto_failover registers that port as is; else the error says which address is wrong).
pub fn keeper_args(keeper: &Keeper, host: &AutoctlHost) -> Result<Vec<String>, String> {
    let (name, registered) = &keeper.hostname;
    if *registered != host.port || name.is_empty() {
        return Err(format!(
            "{}'s registered address {name}:{registered} (it must be on its port {})",
            keeper.name, host.port
        ));
    }
    let (mhost, mport) = &keeper.monitor;
    let s = &keeper.settings;
    let monitor = format!(
        "postgres://autoctl_node@{mhost}:{mport}/{}?sslmode=disable",
        crate::stack::pg_auto_failover::DATABASE
    );
    Ok([
        "create",
        "postgres",
        "--pgdata",
        host.pgdata,
        "--pgport",
        &host.port.to_string(),
        "--pghost",
        host.local,
        "--listen",
        host.listen,
        "--pgctl",
        host.pg_ctl,
        "--hostname",
        name,
        "--name",
        &keeper.name,
        "--username",
        crate::postgres::SUPERUSER,
        "--dbname",
        "postgres",
        "--monitor",
        &monitor,
        "--no-ssl",
        "--skip-pg-hba",
        "--candidate-priority",
        &s.candidate_priority.to_string(),
        "--replication-quorum",
        &s.replication_quorum.to_string(),
        "--run",
    ]
    .map(String::from)
    .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> PatroniMember {
        PatroniMember {
            name: "eu".into(),
            pg_connect: ("rd-x-proxy".into(), 10_001),
            api_connect: ("rd-x-proxy".into(), 10_002),
            dcs: ("rd-x-proxy".into(), 10_003),
            settings: crate::ha::Patroni {
                ttl: 30,
                loop_wait: 10,
                retry_timeout: 10,
                maximum_lag_on_failover: 1_048_576,
                synchronous_mode: false,
                synchronous_mode_strict: false,
                use_pg_rewind: false,
                failsafe_mode: false,
                dcs: crate::ha::Placement {
                    region: "witness".into(),
                    witness_rtt: std::time::Duration::from_millis(40),
                },
                haproxy: crate::ha::HaproxyChecks {
                    inter: std::time::Duration::from_secs(3),
                    fall: 3,
                    rise: 2,
                },
            },
        }
    }

    #[test]
    fn every_address_of_another_node_is_the_wired_one_and_etcd_is_reached_as_a_proxy() {
        let host = MemberHost {
            listen: "0.0.0.0",
            pg_port: 5432,
            api_port: 8008,
            dir: "/tmp/patroni",
            bin_dir: "/usr/lib/postgresql/15/bin",
            trust: "0.0.0.0/0",
        };
        let v: serde_json::Value = serde_json::from_str(&patroni_config(&member(), &host)).unwrap();
        assert_eq!(v["etcd3"]["hosts"][0], "rd-x-proxy:10003");
        assert_eq!(v["etcd3"]["use_proxies"], true);
        assert_eq!(v["postgresql"]["connect_address"], "rd-x-proxy:10001");
        assert_eq!(v["restapi"]["connect_address"], "rd-x-proxy:10002");
        assert_eq!(v["postgresql"]["listen"], "0.0.0.0:5432");
        assert_eq!(v["postgresql"]["data_dir"], "/tmp/patroni/pgdata");
        assert_eq!(v["postgresql"]["pg_hba"][0], "host all all 0.0.0.0/0 trust");
    }
}
