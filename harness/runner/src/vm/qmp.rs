//! A minimal QMP client: one JSON object per line over a Unix socket QEMU connects to.
//!
//! QEMU is started with `-qmp unix:PATH` (client mode), so the runner listens first and there
//! is no polling for a socket to appear. Only what snapshots need: `stop`, `migrate`, status
//! queries, `cont`, `quit`. Asynchronous events are skipped.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;

/// The longest QMP line read: replies here are a few hundred bytes.
const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QEMU did not connect to its QMP socket within {0:?}")]
    NoConnection(Duration),
    #[error("QMP: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP connection closed")]
    Closed,
    #[error("QMP reply is not JSON: {0}")]
    Json(String),
    #[error("QMP `{command}` failed: {error}")]
    Command { command: String, error: String },
    #[error("QMP line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
}

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Accepts QEMU's connection, reads the greeting and enters command mode.
    pub async fn accept(listener: &UnixListener, within: Duration) -> Result<Qmp, QmpError> {
        let (stream, _) = tokio::time::timeout(within, listener.accept())
            .await
            .map_err(|_| QmpError::NoConnection(within))??;
        let (read, writer) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Json(format!("unexpected greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    async fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(QmpError::Closed);
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(QmpError::TooLong);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value =
                serde_json::from_slice(&line).map_err(|e| QmpError::Json(e.to_string()))?;
            return Ok(value);
        }
    }

    /// Runs one command and returns its `return` value; events in between are skipped.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await?;
        loop {
            let reply = self.read_message().await?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            let error = reply
                .get("error")
                .and_then(|e| e.get("desc"))
                .and_then(Value::as_str)
                .unwrap_or("no description")
                .to_string();
            return Err(QmpError::Command {
                command: command.to_string(),
                error,
            });
        }
    }

    /// `query-status`'s `status` (`running`, `paused`, `inmigrate`, `postmigrate`, ...).
    pub async fn status(&mut self) -> Result<String, QmpError> {
        let reply = self.execute("query-status", None).await?;
        Ok(reply
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }

    /// `query-migrate`'s `status` (`active`, `completed`, `failed`, ...) and error, if any.
    pub async fn migration(&mut self) -> Result<(String, Option<String>), QmpError> {
        let reply = self.execute("query-migrate", None).await?;
        let status = reply
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string();
        let error = reply
            .get("error-desc")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok((status, error))
    }
}

/// A shell-quoted path for an `exec:` migration URI (QEMU runs it with `/bin/sh -c`).
pub fn shell_quote(path: &std::path::Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_paths_for_the_shell() {
        assert_eq!(shell_quote("/a b/c".as_ref()), "'/a b/c'");
        assert_eq!(shell_quote("/it's".as_ref()), r"'/it'\''s'");
    }

    /// Against a scripted peer: greeting, capabilities, an event before a reply, an error.
    #[test]
    fn speaks_the_protocol() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("qmp.sock");
            let listener = UnixListener::bind(&path).unwrap();
            let peer = tokio::spawn(async move {
                let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
                stream
                    .write_all(b"{\"QMP\": {\"version\": {}}}\r\n")
                    .await
                    .unwrap();
                let mut seen = Vec::new();
                let replies: [&[u8]; 3] = [
                    b"{\"return\": {}}\r\n",
                    b"{\"event\": \"STOP\"}\r\n{\"return\": {\"status\": \"paused\", \"running\": false}}\r\n",
                    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such thing\"}}\r\n",
                ];
                let mut buf = vec![0u8; 4096];
                for reply in replies {
                    let n = stream.read(&mut buf).await.unwrap();
                    seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    stream.write_all(reply).await.unwrap();
                }
                seen
            });
            let mut qmp = Qmp::accept(&listener, Duration::from_secs(5)).await.unwrap();
            assert_eq!(qmp.status().await.unwrap(), "paused");
            let err = qmp.execute("bogus", Some(json!({"a": 1}))).await.unwrap_err();
            assert!(err.to_string().contains("no such thing"), "{err}");
            let seen = peer.await.unwrap();
            assert!(seen[0].contains("qmp_capabilities"));
            assert!(seen[2].contains("\"arguments\":{\"a\":1}"), "{}", seen[2]);
        });
    }
}
