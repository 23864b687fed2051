use super::*;

const GOOD: &str = r#"
allow_hosts = ["127.0.0.1", "db.example"]

[toxiproxy]
api = "http://127.0.0.1:8474/"

[links.replication]
proxy = "repl"

[links."us-users-to-eu-app"]
proxy = "users"
address = "127.0.0.1:21003"

[regions.us]
app = "http://127.0.0.1:8080"
db = "host=db.example port=5432 user=postgres dbname=postgres"
cache = "redis://127.0.0.1:6379"

[regions.eu]
db = "postgres://postgres@127.0.0.1:5433/postgres"

[nodes.us-db]
kill = "docker kill us-db"
restart = "docker start us-db"
timeout = "45s"
"#;

fn parse_str(text: &str) -> Result<Target, ExperimentError> {
    parse(text, Path::new("t.toml"))
}

#[test]
fn a_good_file_reads_as_written() {
    let t = parse_str(GOOD).unwrap();
    assert_eq!(t.toxiproxy.as_deref(), Some("http://127.0.0.1:8474"));
    assert_eq!(t.links["replication"].proxy, "repl");
    assert_eq!(
        t.links["us-users-to-eu-app"].address,
        Some(("127.0.0.1".into(), 21003))
    );
    assert_eq!(t.db_regions(), ["us", "eu"]);
    assert!(t.has_app());
    let ops = &t.nodes[&NodeId::new("us", Role::Db)];
    assert_eq!(ops.command("kill"), Some("docker kill us-db"));
    assert_eq!(ops.command("pause"), None);
    assert_eq!(ops.timeout, Duration::from_secs(45));
}

/// Each problem names the file, the line and column of the value, and the field.
#[test]
fn problems_name_file_line_column_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "host=db.example",
            "host=evil.example",
            "t.toml:16:6: regions.us.db: host `evil.example` is not in allow_hosts",
        ),
        (
            "\"http://127.0.0.1:8080\"",
            "\"http://10.0.0.1:8080\"",
            "t.toml:15:7: regions.us.app: host `10.0.0.1` is not in allow_hosts",
        ),
        (
            "[links.replication]",
            "[links.replicaton]",
            "t.toml:7:8: links.replicaton: `replicaton` is not one of regiondrill's links",
        ),
        (
            "[nodes.us-db]",
            "[nodes.us-disk]",
            "t.toml:22:8: nodes.us-disk: not a node",
        ),
        (
            "[regions.eu]",
            "[regions.ap]",
            "t.toml:19:10: regions.ap: not a region",
        ),
        (
            "timeout = \"45s\"",
            "timeout = \"soon\"",
            "t.toml:25:11: nodes.us-db.timeout:",
        ),
        (
            "kill = \"docker kill us-db\"",
            "kill = \"\"",
            "t.toml:23:8: nodes.us-db.kill: empty command",
        ),
        (
            "kill = \"docker kill us-db\"",
            "kil = \"x\"",
            "t.toml:23:1: nodes.us-db.kil: unknown field `kil`",
        ),
        (
            "address = \"127.0.0.1:21003\"",
            "address = \"127.0.0.1\"",
            "t.toml:12:11: links.\"us-users-to-eu-app\".address: write host:port",
        ),
        (
            "redis://127.0.0.1:6379",
            "http://127.0.0.1:6379",
            "t.toml:17:9: regions.us.cache: scheme `http` where redis is expected",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(want),
            "{from} -> {to}:\n got  {e}\n want {want}…"
        );
    }
}

#[test]
fn allow_hosts_is_required_and_links_need_a_toxiproxy() {
    let e = parse_str("[regions.us]\napp = \"http://127.0.0.1:1\"\n").unwrap_err();
    assert!(e.to_string().contains("allow_hosts: missing"), "{e}");
    let e = parse_str("allow_hosts = []\n").unwrap_err();
    assert!(e.to_string().contains("allow_hosts: empty"), "{e}");
    let text = "allow_hosts = [\"127.0.0.1\"]\n[links.replication]\nproxy = \"r\"\n";
    let e = parse_str(text).unwrap_err();
    assert!(e.to_string().contains("add [toxiproxy]"), "{e}");
}

#[test]
fn a_dsn_must_name_one_tcp_host() {
    let text = GOOD.replace(
        "postgres://postgres@127.0.0.1:5433/postgres",
        "host=127.0.0.1,db.example port=5432,5433 user=postgres",
    );
    let e = parse_str(&text).unwrap_err();
    assert!(e.to_string().contains("several hosts"), "{e}");
}

#[test]
fn a_write_endpoint_may_name_several_hosts_each_allowed() {
    let text = GOOD.replace(
        "cache = \"redis://127.0.0.1:6379\"",
        "cache = \"redis://127.0.0.1:6379\"\nwrite_db = \"host=127.0.0.1,db.example port=5432,5433 user=postgres target_session_attrs=read-write\"",
    );
    let t = parse_str(&text).unwrap();
    assert!(
        t.regions["us"]
            .write_db
            .as_deref()
            .unwrap()
            .contains("read-write")
    );
    let text = text.replace("host=127.0.0.1,db.example", "host=127.0.0.1,evil.example");
    let e = parse_str(&text).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "t.toml:18:12: regions.us.write_db: host `evil.example` is not in allow_hosts"
        ),
        "{e}"
    );
}
