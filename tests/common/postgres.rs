//! A throwaway PostgreSQL server for tests (`scripts/postgres.sh`), killed when dropped, and `psql` to set up and
//! read its tables (Debian's client, independent of taxiflow's own PostgreSQL code).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running server with trust authentication for user `postgres`.
pub struct LocalPostgres {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LocalPostgres {
    /// Starts a server on a free port and waits until it takes connections.
    pub fn start() -> LocalPostgres {
        let dir = tempfile::tempdir().unwrap();
        // The server runs as the postgres user, which must reach its data directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = super::free_port();
        let mut pg = LocalPostgres { child: None, dir, port, url: format!("postgresql://postgres@127.0.0.1:{port}/postgres") };
        pg.restart();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("pg")
    }

    /// Starts the server again (after [`Self::stop`]) on the same port and data, and waits until it answers.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path().join(format!("server-{}.log", fastrand::u32(..)))).unwrap();
        let child = Command::new(super::root().join("scripts/postgres.sh")).arg(self.data()).arg(self.port.to_string()).stdout(Stdio::null()).stderr(log).spawn().expect("scripts/postgres.sh starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.try_sql("SELECT 1").is_ok_and(|s| s.trim() == "1") {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("scripts/postgres.sh ended ({status}): apt-get install postgresql");
            }
            assert!(std::time::Instant::now() < deadline, "PostgreSQL did not answer on port {} within 60 s", self.port);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL; nothing of a test's data needs to survive it but what was committed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        let output = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8(output.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Runs `sql` with `psql` and returns what it prints (unaligned, tuples only).
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    /// A table's rows as a JSON array (for the Python reference).
    pub fn json_rows(&self, table: &str) -> String {
        let text = self.sql(&format!("SELECT coalesce(json_agg(t), '[]') FROM {table} t"));
        text.trim().to_string()
    }
}
