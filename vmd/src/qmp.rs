//! A small QMP client: line-delimited JSON over the hypervisor's unix socket. It reads the greeting,
//! negotiates capabilities, and runs commands one at a time, skipping the asynchronous events that
//! arrive between a command and its answer.

use crate::error::{Result, VmError};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A QMP session.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and enters command mode; every read and write is
    /// bounded by `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp> {
        let stream = UnixStream::connect(socket)
            .map_err(|err| VmError::Qmp(format!("cannot connect to {}: {err}", socket.display())))?;
        stream.set_read_timeout(Some(timeout)).map_err(VmError::io("qmp socket"))?;
        stream.set_write_timeout(Some(timeout)).map_err(VmError::io("qmp socket"))?;
        let writer = stream.try_clone().map_err(VmError::io("qmp socket"))?;
        let mut qmp = Qmp { reader: BufReader::new(stream), writer };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(VmError::Qmp(format!("unexpected greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|err| VmError::Qmp(format!("read: {err}")))?;
        if n == 0 {
            return Err(VmError::Qmp("connection closed".into()));
        }
        serde_json::from_str(&line).map_err(|err| VmError::Qmp(format!("invalid reply {line:?}: {err}")))
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(|err| VmError::Qmp(format!("write: {err}")))?;
        loop {
            let reply = self.read()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(error) = reply.get("error") {
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(VmError::Qmp(format!("{command}: {desc}")));
            }
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            return Err(VmError::Qmp(format!("{command}: unexpected reply {reply}")));
        }
    }

    /// The run state (`running`, `paused`, `shutdown`, ...) from `query-status`.
    pub fn status(&mut self) -> Result<String> {
        let value = self.execute("query-status", None)?;
        value
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| VmError::Qmp(format!("query-status: no status in {value}")))
    }

    /// Pauses the guest (`stop`).
    pub fn stop(&mut self) -> Result<()> {
        self.execute("stop", None).map(drop)
    }

    /// Resumes the guest (`cont`).
    pub fn cont(&mut self) -> Result<()> {
        self.execute("cont", None).map(drop)
    }

    /// Asks the guest to power off (ACPI, `system_powerdown`).
    pub fn powerdown(&mut self) -> Result<()> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Ends the hypervisor at once (`quit`).
    pub fn quit(&mut self) -> Result<()> {
        self.execute("quit", None).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QMP server answering a script of lines after the greeting.
    fn serve(listener: UnixListener, answers: Vec<&'static str>) -> std::thread::JoinHandle<Vec<String>> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            writer.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n").expect("greeting");
            let mut seen = Vec::new();
            for answer in answers {
                let mut line = String::new();
                reader.read_line(&mut line).expect("request");
                seen.push(line.trim().to_string());
                writer.write_all(answer.as_bytes()).expect("answer");
            }
            seen
        })
    }

    #[test]
    fn negotiates_skips_events_and_reports_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = serve(
            listener,
            vec![
                "{\"return\": {}}\n",
                "{\"event\": \"STOP\", \"timestamp\": {}}\n{\"return\": {\"status\": \"paused\", \"running\": false}}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\n",
            ],
        );
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).expect("connect");
        assert_eq!(qmp.status().expect("status"), "paused");
        let err = qmp.cont().expect_err("refused");
        assert_eq!(err.to_string(), "qmp: cont: nope");
        let seen = server.join().expect("server");
        assert_eq!(
            seen,
            ["{\"execute\":\"qmp_capabilities\"}", "{\"execute\":\"query-status\"}", "{\"execute\":\"cont\"}"]
        );
    }
}
