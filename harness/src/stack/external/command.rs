//! A node operation of a target: one shell command, run with `sh -c`, in its own process
//! group, bounded by its timeout (on timeout the whole group is killed: a `kubectl` waiting
//! forever must not outlive the drill).

use std::process::Stdio;
use std::time::Duration;

/// Why a command did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// It could not be started.
    #[error("`{command}` could not start: {error}")]
    Spawn {
        /// The command.
        command: String,
        /// The error.
        error: String,
    },
    /// It ran past its timeout (and was killed).
    #[error("`{command}` did not finish within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The command.
        command: String,
        /// Its timeout.
        timeout: Duration,
    },
    /// It exited non-zero.
    #[error("`{command}` failed ({status}): {output}")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of what it printed.
        output: String,
    },
}

/// Runs `command` with `sh -c`; what it printed (stdout and stderr) when it exits 0.
pub async fn run(command: &str, timeout: Duration) -> Result<String, CommandError> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CommandError::Spawn {
            command: command.to_string(),
            error: e.to_string(),
        })?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            if out.status.success() {
                Ok(text)
            } else {
                Err(CommandError::Failed {
                    command: command.to_string(),
                    status: out.status.to_string(),
                    output: tail(&text),
                })
            }
        }
        Ok(Err(e)) => Err(CommandError::Spawn {
            command: command.to_string(),
            error: e.to_string(),
        }),
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: the group was created for this command (process_group(0)).
                unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
            }
            Err(CommandError::Timeout {
                command: command.to_string(),
                timeout,
            })
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_failure_and_timeout() {
        let out = run("echo hello; echo err >&2", Duration::from_secs(5)).await;
        assert_eq!(out.unwrap(), "hello\nerr\n");
        let e = run("echo nope; exit 3", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("exit status: 3") && e.to_string().contains("nope"),
            "{e}"
        );
        let t = std::time::Instant::now();
        let e = run("sleep 30 & sleep 30", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
