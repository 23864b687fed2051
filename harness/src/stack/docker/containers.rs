//! What each node's container runs. The harness runs its own commands in every container
//! rather than relying on an image's entrypoint, so the official images and the offline ones
//! `just images` builds behave the same; the offline database image also holds an empty
//! cluster made at build time ([`PG_TEMPLATE`]), copied on first start instead of `initdb`.

use super::images::Images;
use crate::stack::clock;
use crate::stack::ha_config::{self, MemberHost};
use crate::stack::plan::{Keeper, NodeSpec, PatroniMember, Program};
use crate::stack::topology::Role;

/// Port PostgreSQL listens on inside its container.
pub const PG_PORT: u16 = 5432;
/// Port Redis listens on inside its container.
pub const REDIS_PORT: u16 = 6379;
/// Port the app listens on inside its container.
pub const APP_PORT: u16 = 8080;
/// The fault proxy's API port inside its container.
pub const PROXY_API_PORT: u16 = 8474;
/// First listen port of the links inside the proxy's container.
pub const LINK_PORT_BASE: u16 = 10_000;
/// Where PostgreSQL keeps its files inside its container (writable by any user).
pub const PGDATA: &str = "/tmp/pgdata";
/// The database container's volume (an anonymous one, removed with the container): its
/// `/tmp`, holding [`PGDATA`], so that a helper container can work on the data of a stopped
/// database (`run_on_data`: a deposed primary rewound or re-cloned). The image's `/tmp`
/// (mode 1777) is copied into it, so the `postgres` user writes there as before.
pub const DB_VOLUME: &str = "/tmp";
/// The empty cluster the offline image holds (see `stacks/images/build.sh`); absent from
/// the official image, where the start script runs `initdb` (or, for a standby,
/// `pg_basebackup`) instead.
pub const PG_TEMPLATE: &str = "/var/lib/regiondrill/pg-template";
/// Docker's DNS server inside a container on a user-defined network: container names
/// resolve there once the container exists.
pub const DOCKER_DNS: &str = "127.0.0.11:53";
/// How many times (0.1 s apart) a container's script checks for what it needs before its
/// program starts (the proxy's and its peers' containers start at the same time as it).
const WAIT_TRIES: u32 = 600;
/// A Patroni member's directory (its configuration, and PostgreSQL's data below it).
pub const PATRONI_DIR: &str = "/tmp/patroni";
/// Debian's PostgreSQL programs, in the database image.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// etcd's data, inside its container.
pub const ETCD_DATA: &str = "/tmp/etcd";
/// etcd's peer port (a one-member cluster: never reached from outside its container).
pub const ETCD_PEER_PORT: u16 = 2380;
/// A `pg_autoctl` node's directory (its `XDG_*` files, and PostgreSQL's data below it).
pub const AUTOCTL_DIR: &str = "/tmp/pg_autoctl";
/// The port pg_auto_failover's monitor listens on inside its container. A keeper's
/// PostgreSQL listens on its registered link's port instead (see [`pg_autoctl`]).
pub const MONITOR_PORT: u16 = PG_PORT;
/// The clock offset file of a skewed node, inside its container.
pub const CLOCK_FILE: &str = "/tmp/regiondrill-faketime";

/// The port a node's program listens on inside its container.
pub fn listen_port(role: Role) -> u16 {
    match role {
        Role::Db => PG_PORT,
        Role::Cache => REDIS_PORT,
        Role::App => APP_PORT,
        Role::Dcs => 2379,
        Role::Router => 5000,
        Role::Api => 8008,
    }
}

/// One container: image, command, user, and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Image.
    pub image: String,
    /// Entrypoint.
    pub entrypoint: String,
    /// Arguments.
    pub cmd: Vec<String>,
    /// User to run as.
    pub user: Option<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// The port its program listens on.
    pub port: u16,
    /// Paths that are anonymous volumes (removed with the container).
    pub volumes: Vec<String>,
}

/// The container of a node.
pub fn container(node: &NodeSpec, images: &Images) -> Container {
    let c = match &node.program {
        Program::Postgres {
            cluster_name,
            standby_of,
            wal_log_hints,
        } => Container {
            image: images.db.clone(),
            entrypoint: "sh".into(),
            cmd: vec![
                "-c".into(),
                postgres_script(cluster_name, standby_of.as_ref(), *wal_log_hints),
            ],
            user: Some("postgres".into()),
            env: Vec::new(),
            port: PG_PORT,
            volumes: vec![DB_VOLUME.into()],
        },
        Program::Redis => Container {
            image: images.cache.clone(),
            entrypoint: "redis-server".into(),
            cmd: [
                "--bind",
                "0.0.0.0",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--set-proc-title",
                "no",
            ]
            .map(String::from)
            .to_vec(),
            user: None,
            env: Vec::new(),
            port: REDIS_PORT,
            volumes: Vec::new(),
        },
        Program::App { args } => Container {
            image: images.app.clone(),
            entrypoint: crate::app::PROGRAM.into(),
            cmd: [
                "serve".to_string(),
                "--listen".into(),
                format!("0.0.0.0:{APP_PORT}"),
            ]
            .into_iter()
            .chain(args.iter().cloned())
            .collect(),
            user: None,
            env: Vec::new(),
            port: APP_PORT,
            volumes: Vec::new(),
        },
        Program::Patroni(member) => patroni(member, images),
        Program::Etcd => Container {
            image: images.db.clone(),
            entrypoint: "etcd".into(),
            cmd: ha_config::etcd_args(
                &node.id.to_string(),
                ETCD_DATA,
                "0.0.0.0",
                listen_port(Role::Dcs),
                // Never used: Patroni reaches etcd as a proxy, through the links.
                &("127.0.0.1".to_string(), listen_port(Role::Dcs)),
                ETCD_PEER_PORT,
            ),
            user: Some("postgres".into()),
            env: Vec::new(),
            port: listen_port(Role::Dcs),
            volumes: Vec::new(),
        },
        Program::Haproxy(router) => {
            let bind = format!("0.0.0.0:{}", listen_port(Role::Router));
            let cfg = router.render(&bind, Some(DOCKER_DNS));
            Container {
                image: images.db.clone(),
                entrypoint: "sh".into(),
                cmd: vec![
                    "-c".into(),
                    format!(
                        "cat > /tmp/haproxy.cfg <<'CFG'\n{cfg}CFG\nexec haproxy -f /tmp/haproxy.cfg -db"
                    ),
                ],
                user: Some("postgres".into()),
                env: Vec::new(),
                port: listen_port(Role::Router),
                volumes: Vec::new(),
            }
        }
        Program::PgAutoFailoverMonitor => pg_autoctl(None, images),
        Program::PgAutoFailoverKeeper(keeper) => pg_autoctl(Some(keeper), images),
    };
    if node.skewed { under_faketime(c) } else { c }
}

/// A Patroni member: its configuration written into the container, then Patroni, which
/// initialises (or clones) and runs PostgreSQL itself in [`DB_VOLUME`]. A restart keeps the
/// data, and Patroni rejoins with it.
fn patroni(member: &PatroniMember, images: &Images) -> Container {
    let host = MemberHost {
        listen: "0.0.0.0",
        pg_port: PG_PORT,
        api_port: listen_port(Role::Api),
        dir: PATRONI_DIR,
        bin_dir: PG_BIN_DIR,
        trust: "0.0.0.0/0",
    };
    let config = ha_config::patroni_config(member, &host);
    // Patroni exits at start when its etcd does not answer (its name not resolving yet, its
    // link not created yet, etcd still starting) or answers with its cluster's version not
    // decided yet: wait until etcd answers a decided version through the very address
    // Patroni uses, for at most a minute.
    let (dcs_host, dcs_port) = &member.dcs;
    let script = format!(
        "n=0; until python3 -c \"import json, urllib.request as u; \
         v = json.load(u.urlopen('http://{dcs_host}:{dcs_port}/version', timeout=1)); \
         assert v['etcdcluster'][:1].isdigit()\" 2>/dev/null; do \
         n=$((n + 1)); [ \"$n\" -ge {WAIT_TRIES} ] && break; sleep 0.1; done\n\
         mkdir -p {PATRONI_DIR} && cat > {PATRONI_DIR}/patroni.yml <<'YML'\n{config}\nYML\n\
         exec patroni {PATRONI_DIR}/patroni.yml"
    );
    Container {
        image: images.db.clone(),
        entrypoint: "sh".into(),
        cmd: vec!["-c".into(), script],
        user: Some("postgres".into()),
        env: vec![("HOME".into(), PATRONI_DIR.into())],
        port: PG_PORT,
        volumes: vec![DB_VOLUME.into()],
    }
}

/// pg_auto_failover's monitor (`keeper` None) or a keeper, `pg_autoctl … --run` as the
/// `postgres` user with its files in [`AUTOCTL_DIR`] (in [`DB_VOLUME`]: a restart keeps
/// them, and `pg_autoctl create` then runs the node it already has). Its pid files
/// (`XDG_RUNTIME_DIR`) are removed at each start: a restarted container's pg_autoctl is pid
/// 1 again, as the killed one was, and would take itself for that one, still running.
///
/// pg_auto_failover has one address per node, which it registers in the monitor
/// (`--hostname` and the port PostgreSQL listens on) and which both the monitor's health
/// checks and the other keeper's stream (`pg_basebackup`, `primary_conninfo`) use. A keeper
/// registers its database's replication link in the proxy container (the plan's
/// `Keeper::hostname`: the proxy's name, which Docker's DNS resolves on every region's
/// network and the witness's to the proxy's address there); so the backend has the link
/// listen on a port of its own and the keeper's PostgreSQL listen on that same port in its
/// own container (`Keeper::hostname.1`), and whoever connects to the registered address,
/// from any network, crosses that link. The keeper reaches its own PostgreSQL on
/// 127.0.0.1, never through the link.
///
/// The monitor and the first keeper start on a copy of the image's empty cluster (the
/// drill's settings and trust for the stack's networks; in `postgresql.auto.conf`, read
/// last, `shared_buffers` set back from pg_auto_failover's sizing for the whole host, and
/// the socket in `/tmp`, since the image has no `/var/run/postgresql`);
/// the other keeper clones the first with `pg_basebackup` (its configuration and
/// `pg_hba.conf` are the first's). A keeper waits until the monitor answers through the
/// address it was given (the links are created while the nodes start).
fn pg_autoctl(keeper: Option<&Keeper>, images: &Images) -> Container {
    let pgdata = format!("{AUTOCTL_DIR}/pgdata");
    let pg_ctl = format!("{PG_BIN_DIR}/pg_ctl");
    let port = keeper.map_or(MONITOR_PORT, |k| k.hostname.1);
    let host = ha_config::AutoctlHost {
        pgdata: &pgdata,
        pg_ctl: &pg_ctl,
        port,
        listen: "*",
        local: "127.0.0.1",
    };
    // Its container's host name (which resolves to it on its network): the monitor's own
    // address is informational only, keepers are given the monitor's link.
    let args = match keeper {
        None => ha_config::monitor_args(&host, "$(hostname)"),
        // Its port is the registered one by construction; an unplaced (empty) address is
        // refused before the container is made (`DockerBackend::start`).
        Some(k) => ha_config::keeper_args(k, &host).unwrap_or_default(),
    };
    let seeded = keeper.is_none_or(|k| k.first);
    let conf = crate::stack::native::pg::conf_text(&crate::postgres::cluster_conf());
    let seed = if seeded {
        format!(
            r#"if [ ! -s "$PGDATA/PG_VERSION" ]; then
  cp -a {PG_TEMPLATE} "$PGDATA"
  cat >> "$PGDATA/postgresql.conf" <<'CONF'
{conf}CONF
  printf 'host all all 0.0.0.0/0 trust
host replication all 0.0.0.0/0 trust
' >> "$PGDATA/pg_hba.conf"
  printf "shared_buffers = '64MB'\nunix_socket_directories = '/tmp'\n" >> "$PGDATA/postgresql.auto.conf"
fi
"#
        )
    } else {
        String::new()
    };
    let wait = match keeper {
        Some(Keeper {
            monitor: (mhost, mport),
            ..
        }) => format!(
            "n=0; until pg_isready -q -h {mhost} -p {mport} -t 1; do \
             n=$((n + 1)); [ \"$n\" -ge {WAIT_TRIES} ] && break; sleep 0.1; done\n"
        ),
        None => String::new(),
    };
    // Double quotes: the monitor's host name is expanded; no argument holds `"`, `\`, `$`
    // or a backquote otherwise.
    let argv: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    let script = format!(
        r#"set -e
export PGDATA={pgdata} HOME={AUTOCTL_DIR}
export XDG_CONFIG_HOME={AUTOCTL_DIR}/config XDG_DATA_HOME={AUTOCTL_DIR}/share XDG_RUNTIME_DIR={AUTOCTL_DIR}/run
rm -rf "$XDG_RUNTIME_DIR"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
{seed}{wait}unset PGDATA
exec pg_autoctl {}
"#,
        argv.join(" ")
    );
    Container {
        image: images.db.clone(),
        entrypoint: "sh".into(),
        cmd: vec!["-c".into(), script],
        user: Some("postgres".into()),
        env: Vec::new(),
        port,
        volumes: vec![DB_VOLUME.into()],
    }
}

/// Runs a container's program under libfaketime: the offset file must exist before the
/// program first reads the clock, so a shell writes it and then `exec`s the program.
fn under_faketime(c: Container) -> Container {
    let script = format!(
        "printf '%s' '{}' > {CLOCK_FILE} && exec \"$@\"",
        clock::faketime_offset(0)
    );
    let cmd = ["-c".to_string(), script, "sh".into(), c.entrypoint.clone()]
        .into_iter()
        .chain(c.cmd)
        .collect();
    let env = clock::faketime_env(
        std::path::Path::new(clock::DEBIAN_LIBFAKETIME),
        std::path::Path::new(CLOCK_FILE),
    );
    Container {
        entrypoint: "sh".into(),
        cmd,
        env,
        ..c
    }
}

/// The shell command that rewrites a skewed node's clock offset.
pub fn set_clock_script(offset_ms: i64) -> String {
    format!(
        "printf '%s' '{}' > {CLOCK_FILE}.tmp && mv {CLOCK_FILE}.tmp {CLOCK_FILE}",
        clock::faketime_offset(offset_ms)
    )
}

/// A database's command: on first start, a cluster — the image's template when it has one,
/// else `initdb` (a standby: the template too, set to stream from its primary; else
/// `pg_basebackup` through the replication link) — with the drill's settings and trust for
/// the stack's networks; then PostgreSQL in the foreground. A restart keeps the cluster.
fn postgres_script(
    cluster_name: &str,
    standby_of: Option<&(String, u16)>,
    wal_log_hints: bool,
) -> String {
    let hints = crate::stack::native::pg::on_off(wal_log_hints);
    let conf = crate::stack::native::pg::conf_text(&crate::postgres::cluster_conf());
    let flags = crate::postgres::INITDB_FLAGS.join(" ");
    let init = match standby_of {
        None => format!(
            r#"if [ -d {PG_TEMPLATE} ]; then cp -a {PG_TEMPLATE} "$PGDATA"; else initdb -D "$PGDATA" {flags} >/dev/null; fi"#
        ),
        Some((host, port)) => {
            let conninfo = crate::postgres::primary_conninfo(host, *port);
            format!(
                r#"if [ -d {PG_TEMPLATE} ]; then
    cp -a {PG_TEMPLATE} "$PGDATA" && touch "$PGDATA/standby.signal"
    printf '%s' "{conninfo}" >> "$PGDATA/postgresql.auto.conf"
  else
    n=0
    until pg_basebackup -h {host} -p {port} -U postgres -D "$PGDATA" -X stream -R -c fast --no-sync; do
      n=$((n + 1)); [ "$n" -ge 100 ] && exit 1
      rm -rf "$PGDATA"; sleep 0.2
    done
  fi"#
            )
        }
    };
    format!(
        r#"set -e
export PGDATA={PGDATA}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  {init}
  cat >> "$PGDATA/postgresql.conf" <<'CONF'
{conf}CONF
  printf 'host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n' >> "$PGDATA/pg_hba.conf"
  echo "wal_log_hints = {hints}" >> "$PGDATA/postgresql.auto.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port={PG_PORT} -c unix_socket_directories=/tmp -c cluster_name={cluster_name}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::plan::Readiness;
    use crate::stack::topology::NodeId;

    fn spec(program: Program, skewed: bool) -> NodeSpec {
        NodeSpec {
            id: NodeId::new("eu", Role::App),
            program,
            ready: Readiness::Sql,
            skewed,
            after: None,
        }
    }

    #[test]
    fn a_standby_streams_from_its_primary_through_the_link() {
        let c = container(
            &spec(
                Program::Postgres {
                    cluster_name: "eu".into(),
                    standby_of: Some(("rd-x-proxy".into(), 10_000)),
                    wal_log_hints: true,
                },
                false,
            ),
            &Images::local(),
        );
        let script = &c.cmd[1];
        assert!(script.contains("standby.signal"), "{script}");
        assert!(script.contains("host=rd-x-proxy port=10000"), "{script}");
        assert!(
            script.contains("pg_basebackup -h rd-x-proxy -p 10000"),
            "{script}"
        );
        assert!(script.contains("cluster_name=eu"), "{script}");
        assert!(
            script.contains(r#"echo "wal_log_hints = on" >> "$PGDATA/postgresql.auto.conf""#),
            "{script}"
        );
        assert_eq!(c.user.as_deref(), Some("postgres"));
    }

    /// A keeper's PostgreSQL listens on the port it registers (its link's, in the proxy's
    /// container), registered at the proxy's name; it reaches its own PostgreSQL directly
    /// and waits for the monitor through its link. Only the first keeper (and the monitor)
    /// starts on a copy of the empty cluster; the other clones it.
    #[test]
    fn a_keeper_registers_its_link_and_listens_on_its_port() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../experiments/pg-auto-failover-region-loss.toml");
        let settings = crate::experiment::load(&path)
            .unwrap()
            .stack_plan()
            .pg_auto_failover
            .unwrap();
        let keeper = |first| Keeper {
            name: "us".into(),
            hostname: ("rd-x-proxy".into(), 10_000),
            monitor: ("rd-x-proxy".into(), 10_010),
            first,
            settings: settings.clone(),
        };
        let mut node = spec(Program::PgAutoFailoverKeeper(keeper(true)), false);
        node.id = NodeId::new("us", Role::Db);
        let c = container(&node, &Images::local());
        assert_eq!((c.port, c.user.as_deref()), (10_000, Some("postgres")));
        let script = &c.cmd[1];
        for arg in [
            r#""--hostname" "rd-x-proxy""#,
            r#""--pgport" "10000""#,
            r#""--pghost" "127.0.0.1""#,
            r#""--listen" "*""#,
            r#""--monitor" "postgres://autoctl_node@rd-x-proxy:10010/pg_auto_failover?sslmode=disable""#,
            "until pg_isready -q -h rd-x-proxy -p 10010",
            "cp -a /var/lib/regiondrill/pg-template",
            r#"rm -rf "$XDG_RUNTIME_DIR""#,
        ] {
            assert!(script.contains(arg), "{arg} not in {script}");
        }
        node.program = Program::PgAutoFailoverKeeper(keeper(false));
        let script = &container(&node, &Images::local()).cmd[1];
        assert!(!script.contains("pg-template"), "{script}");
        node.program = Program::PgAutoFailoverMonitor;
        let c = container(&node, &Images::local());
        assert_eq!(c.port, MONITOR_PORT);
        assert!(c.cmd[1].contains(r#""create" "monitor""#), "{}", c.cmd[1]);
        assert!(c.cmd[1].contains("pg-template"), "{}", c.cmd[1]);
    }

    #[test]
    fn a_skewed_app_starts_under_libfaketime_with_its_offset_file_written_first() {
        let c = container(
            &spec(
                Program::App {
                    args: vec!["--region".into(), "eu".into()],
                },
                true,
            ),
            &Images::local(),
        );
        assert_eq!(c.entrypoint, "sh");
        assert!(c.cmd[1].starts_with("printf '%s' '+0.000' > /tmp/regiondrill-faketime"));
        assert_eq!(&c.cmd[2..5], ["sh", "regiondrill-app", "serve"]);
        assert!(
            c.env
                .iter()
                .any(|(k, v)| k == "LD_PRELOAD" && v.ends_with("libfaketime.so.1"))
        );
    }
}
