//! A private PostgreSQL cluster started from the machine's PostgreSQL binaries: the default
//! database when no `DATABASE_URL` is given, and the throwaway cluster of test runs.
//!
//! Layout under the data directory handed to [`EmbeddedPostgres::start`]:
//!
//! - `pgdata/`: the cluster (`initdb` on first use, reused afterwards);
//! - `run/`: the Unix socket. The server never listens on TCP (`listen_addresses = ''`) and the
//!   socket directory is private (mode 0700), which is what makes `trust` authentication safe;
//! - `postgres.log` (and `postgres.log.1`, the previous run's): the server's log.
//!
//! `initdb` and `postgres` refuse to run as root. When we are root they run as the `postgres`
//! system user, and the data directory is handed to that user.
//!
//! The cluster must never outlive its owner, even when the owner is killed with SIGKILL or keeps
//! the cluster in a `static` whose `Drop` never runs. So `postgres` is started by a small `sh`
//! watchdog whose stdin is a pipe from the owner: the pipe closes when the owner drops it or
//! dies, and the watchdog then asks `postgres` for a fast shutdown (SIGINT).

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, User};

/// The socket's port number. Nothing listens on TCP; the number only names the socket file
/// (`.s.PGSQL.5432`), which lives in a directory private to this cluster.
pub const PORT: u16 = 5432;

/// The cluster's superuser (created by `initdb -U`), whatever OS user runs the server.
pub const SUPERUSER: &str = "postgres";

/// Set to `1` to start clusters tuned for throwaway use (see [`Options::fast`]).
pub const FAST_ENV: &str = "SYNCLINE_PG_FAST";

/// Names the directory holding `initdb` and `postgres`, ahead of the automatic search.
pub const BIN_DIR_ENV: &str = "SYNCLINE_PG_BIN_DIR";

/// The OS user PostgreSQL runs as when we are root.
const SERVICE_USER: &str = "postgres";

/// `sun_path` is 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Crash recovery of a large cluster can take a while; a fresh one is ready in about a second.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a fast shutdown may take before we escalate to an immediate one.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The watchdog, run by `sh -c` with the `postgres` command line as its arguments.
///
/// It starts `postgres` in the background (stdin from /dev/null, output to the log on stderr),
/// reports its pid on stdout, and leaves a subshell blocked reading the owner's pipe (kept on
/// fd 3): end of file means the owner let go or died, and the subshell asks for a fast
/// shutdown. The main shell waits for `postgres`, so the owner sees the watchdog exit exactly
/// when `postgres` has exited, and removes the data directory afterwards when asked to.
const WATCHDOG_SCRIPT: &str = r#"
exec 3<&0 </dev/null 4>&1 >&2
"$@" 3<&- 4>&- &
pid=$!
echo "$pid" >&4
exec 4>&-
( while read -r _ <&3; do :; done; kill -INT "$pid" 2>/dev/null ) &
exec 3<&-
wait "$pid"
status=$?
if [ -n "${SYNCLINE_PG_REMOVE_DIR:-}" ]; then rm -rf -- "$SYNCLINE_PG_REMOVE_DIR" 2>/dev/null; fi
exit "$status"
"#;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found (looked in {}): install them with \
         `apt-get install postgresql`, set {BIN_DIR_ENV} to their directory, or set DATABASE_URL \
         to use an existing server",
        display_paths(searched)
    )]
    BinariesNotFound { searched: Vec<PathBuf> },

    #[error(
        "running as root, but there is no `{SERVICE_USER}` system user to run PostgreSQL as: \
         create it (`useradd --system --user-group {SERVICE_USER}`), run as an unprivileged user, \
         or set DATABASE_URL"
    )]
    NoServiceUser,

    #[error(
        "the PostgreSQL socket path {} is longer than {MAX_SOCKET_PATH} bytes: use a shorter data \
         directory or set DATABASE_URL",
        path.display()
    )]
    SocketPathTooLong { path: PathBuf },

    #[error(
        "{} holds a PostgreSQL {data_version} cluster but {} has PostgreSQL {bin_version}: install \
         PostgreSQL {data_version}, upgrade the cluster with pg_upgrade, or use another data directory",
        data_dir.display(),
        bin_dir.display()
    )]
    VersionMismatch {
        data_dir: PathBuf,
        data_version: String,
        bin_dir: PathBuf,
        bin_version: String,
    },

    #[error("initdb failed ({status}); log {}: {tail}", log.display())]
    InitdbFailed {
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },

    #[error("PostgreSQL exited while starting ({status}); log {}: {tail}", log.display())]
    StartFailed {
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },

    #[error("PostgreSQL did not accept connections within {}s; log {}: {tail}", timeout.as_secs(), log.display())]
    StartTimeout {
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedPgError {
    let what = what.into();
    move |source| EmbeddedPgError::Io { what, source }
}

fn sys_err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> EmbeddedPgError {
    let what = what.into();
    move |source| EmbeddedPgError::Sys { what, source }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no candidate directories".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to start a cluster.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Trade durability for speed, for clusters whose data may be lost: `fsync`,
    /// `synchronous_commit` and `full_page_writes` off, `initdb --no-sync`, and room for more
    /// connections (test processes open many pools). Never for the real server.
    pub fast: bool,
    /// Delete the data directory once PostgreSQL has stopped, including when the owner dies
    /// without dropping the cluster (test clusters kept in a `static`).
    pub remove_data_dir_on_exit: bool,
    /// Directories to look for `initdb` and `postgres` in, instead of the automatic search
    /// (`SYNCLINE_PG_BIN_DIR`, `pg_config --bindir`, `/usr/lib/postgresql/*/bin` newest first,
    /// then `PATH`).
    pub bin_dirs: Option<Vec<PathBuf>>,
}

impl Options {
    /// The defaults, with [`Options::fast`] taken from `SYNCLINE_PG_FAST` (`1` or `true`).
    pub fn from_env() -> Self {
        let fast = std::env::var(FAST_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        Self {
            fast,
            ..Self::default()
        }
    }

    /// A fast cluster that removes itself when stopped: what test processes want.
    pub fn throwaway() -> Self {
        Self {
            fast: true,
            remove_data_dir_on_exit: true,
            bin_dirs: None,
        }
    }
}

/// A running private cluster; stopped (fast shutdown) on drop.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    /// Known once the watchdog reported it.
    postgres_pid: Option<Pid>,
    /// The `sh` watchdog; leader of its own process group.
    watchdog: Option<Child>,
    /// The pipe whose closing tells the watchdog to stop PostgreSQL.
    lifeline: Option<ChildStdin>,
    remove_data_dir_on_exit: bool,
}

impl EmbeddedPostgres {
    /// Initializes (first time) and starts a cluster under `data_dir`; blocks until it accepts
    /// connections. Options come from the environment ([`Options::from_env`]).
    pub fn start(data_dir: &Path) -> Result<Self, EmbeddedPgError> {
        Self::start_with(data_dir, Options::from_env())
    }

    /// Like [`EmbeddedPostgres::start`] with explicit options.
    pub fn start_with(data_dir: &Path, options: Options) -> Result<Self, EmbeddedPgError> {
        let bin_dir = find_bin_dir(options.bin_dirs.clone())?;
        let run_as = service_user()?;

        fs::create_dir_all(data_dir).map_err(io_err(format!(
            "creating the data directory {}",
            data_dir.display()
        )))?;
        let data_dir = fs::canonicalize(data_dir).map_err(io_err(format!(
            "resolving the data directory {}",
            data_dir.display()
        )))?;
        let socket_dir = data_dir.join("run");
        let socket_path = socket_dir.join(format!(".s.PGSQL.{PORT}"));
        if socket_path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(EmbeddedPgError::SocketPathTooLong { path: socket_path });
        }

        // The data directory and the socket directory are private to the cluster's owner:
        // the socket uses trust authentication.
        private_dir(&data_dir, run_as.as_ref())?;
        if let Some(user) = &run_as {
            make_reachable(&data_dir, user)?;
        }
        fs::create_dir_all(&socket_dir).map_err(io_err(format!(
            "creating the socket directory {}",
            socket_dir.display()
        )))?;
        private_dir(&socket_dir, run_as.as_ref())?;

        let log_path = data_dir.join("postgres.log");
        let log = open_log(&log_path, run_as.as_ref())?;

        let pgdata = data_dir.join("pgdata");
        if pgdata.join("PG_VERSION").is_file() {
            check_version(&bin_dir, &pgdata)?;
        } else {
            init_cluster(
                &bin_dir,
                &data_dir,
                &pgdata,
                &log,
                &log_path,
                run_as.as_ref(),
                options.fast,
            )?;
        }

        let mut postgres_args: Vec<OsString> = vec![
            bin_dir.join("postgres").into(),
            "-D".into(),
            pgdata.clone().into(),
            "-p".into(),
            PORT.to_string().into(),
            "-c".into(),
            "listen_addresses=".into(),
            "-c".into(),
            {
                let mut s = OsString::from("unix_socket_directories=");
                s.push(&socket_dir);
                s
            },
            "-c".into(),
            "unix_socket_permissions=0700".into(),
        ];
        if options.fast {
            for setting in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "max_connections=300",
            ] {
                postgres_args.push("-c".into());
                postgres_args.push(setting.into());
            }
        }

        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("syncline-pg-watchdog")
            .args(&postgres_args)
            .current_dir(&data_dir)
            .env("LC_ALL", "C")
            .env_remove("SYNCLINE_PG_REMOVE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(clone_log(&log, &log_path)?)
            // Its own process group: a Ctrl-C in the terminal reaches only the server, which then
            // stops the cluster in order instead of PostgreSQL dying under open connections.
            .process_group(0);
        if options.remove_data_dir_on_exit {
            command.env("SYNCLINE_PG_REMOVE_DIR", &data_dir);
        }
        run_as_user(&mut command, run_as.as_ref());
        let mut watchdog = command
            .spawn()
            .map_err(io_err("starting the PostgreSQL watchdog (/bin/sh)"))?;
        let lifeline = watchdog.stdin.take();
        let stdout = watchdog.stdout.take();

        // From here on, dropping `pg` on an error path stops whatever was started.
        let mut pg = Self {
            data_dir,
            socket_dir,
            log_path,
            postgres_pid: None,
            watchdog: Some(watchdog),
            lifeline,
            remove_data_dir_on_exit: options.remove_data_dir_on_exit,
        };
        pg.postgres_pid = Some(read_pid(stdout)?);
        pg.wait_ready(&pgdata)?;
        tracing::info!(
            data_dir = %pg.data_dir.display(),
            socket_dir = %pg.socket_dir.display(),
            fast = options.fast,
            "embedded PostgreSQL is accepting connections"
        );
        Ok(pg)
    }

    /// A sqlx connection URL to `database` as the cluster's superuser, over its Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres:///{}?host={}&port={PORT}&user={SUPERUSER}",
            percent_encode(database),
            percent_encode(&self.socket_dir.to_string_lossy())
        )
    }

    /// The (absolute) data directory this cluster lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the cluster's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Stops the cluster now (fast shutdown) and waits for it to exit.
    pub fn stop(mut self) -> Result<(), EmbeddedPgError> {
        self.shutdown()
    }

    /// Polls `postmaster.pid` until the server we started reports `ready`, the way `pg_ctl`
    /// does: it is rewritten by every postmaster, so a stale file from an earlier run is told
    /// apart by its pid.
    fn wait_ready(&mut self, pgdata: &Path) -> Result<(), EmbeddedPgError> {
        let pid_file = pgdata.join("postmaster.pid");
        let expected_pid = self.postgres_pid.map(|p| p.as_raw().to_string());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = match self.watchdog.as_mut() {
                Some(watchdog) => watchdog
                    .try_wait()
                    .map_err(io_err("checking on the PostgreSQL watchdog"))?,
                None => None,
            };
            if let Some(status) = exited {
                return Err(EmbeddedPgError::StartFailed {
                    status,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            if let Ok(contents) = fs::read_to_string(&pid_file) {
                let lines: Vec<&str> = contents.lines().collect();
                // Line 1 is the pid, line 8 the status (PostgreSQL 10 and later).
                let ours = lines.first().map(|l| l.trim()) == expected_pid.as_deref();
                if ours && lines.get(7).is_some_and(|s| s.trim() == "ready") {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(EmbeddedPgError::StartTimeout {
                    timeout: START_TIMEOUT,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the lifeline (the watchdog then requests a fast shutdown) and waits for
    /// PostgreSQL to exit, escalating to an immediate shutdown and finally SIGKILL.
    fn shutdown(&mut self) -> Result<(), EmbeddedPgError> {
        let result = self.stop_server();
        // The watchdog removed what PostgreSQL's user may remove; the data directory's own
        // entry may sit in a directory only we can write to.
        if self.remove_data_dir_on_exit && self.data_dir.exists() {
            fs::remove_dir_all(&self.data_dir)
                .map_err(io_err(format!("removing {}", self.data_dir.display())))?;
        }
        result
    }

    fn stop_server(&mut self) -> Result<(), EmbeddedPgError> {
        drop(self.lifeline.take());
        let Some(mut watchdog) = self.watchdog.take() else {
            return Ok(());
        };
        if wait_timeout(&mut watchdog, STOP_TIMEOUT)?.is_some() {
            return Ok(());
        }
        tracing::warn!(
            "PostgreSQL did not stop within {}s; immediate shutdown",
            STOP_TIMEOUT.as_secs()
        );
        if let Some(pid) = self.postgres_pid {
            // ESRCH just means it exited meanwhile.
            let _ = signal::kill(pid, Signal::SIGQUIT);
        }
        if wait_timeout(&mut watchdog, Duration::from_secs(10))?.is_some() {
            return Ok(());
        }
        tracing::warn!("PostgreSQL ignored the immediate shutdown; killing its process group");
        let group = i32::try_from(watchdog.id()).map_err(|_| EmbeddedPgError::Io {
            what: "the watchdog's pid does not fit a pid_t".into(),
            source: io::Error::other("pid out of range"),
        })?;
        signal::killpg(Pid::from_raw(group), Signal::SIGKILL)
            .map_err(sys_err("killing the PostgreSQL process group"))?;
        watchdog
            .wait()
            .map_err(io_err("waiting for the PostgreSQL watchdog"))?;
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "stopping the embedded PostgreSQL failed");
        }
    }
}

/// Waits up to `timeout` for `child` to exit.
fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
) -> Result<Option<ExitStatus>, EmbeddedPgError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(io_err("waiting for the PostgreSQL watchdog"))?
        {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the pid the watchdog reports once it has forked `postgres`.
fn read_pid(stdout: Option<std::process::ChildStdout>) -> Result<Pid, EmbeddedPgError> {
    let stdout = stdout.ok_or_else(|| EmbeddedPgError::Io {
        what: "the PostgreSQL watchdog has no stdout pipe".into(),
        source: io::Error::other("missing pipe"),
    })?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(io_err("reading the PostgreSQL pid from the watchdog"))?;
    line.trim()
        .parse::<i32>()
        .map(Pid::from_raw)
        .map_err(|_| EmbeddedPgError::Io {
            what: format!(
                "the PostgreSQL watchdog reported no pid (got {:?})",
                line.trim()
            ),
            source: io::Error::other("bad pid line"),
        })
}

/// Runs `initdb` into a scratch directory and renames it into place, so that an interrupted
/// `initdb` never leaves a half-made cluster that later starts would try to reuse.
fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    pgdata: &Path,
    log: &fs::File,
    log_path: &Path,
    run_as: Option<&User>,
    fast: bool,
) -> Result<(), EmbeddedPgError> {
    let scratch = data_dir.join("pgdata.initdb");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(io_err(format!(
            "removing the leftover {}",
            scratch.display()
        )))?;
    }
    let mut command = Command::new(bin_dir.join("initdb"));
    command
        .arg("-D")
        .arg(&scratch)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ])
        .current_dir(data_dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(clone_log(log, log_path)?)
        .stderr(clone_log(log, log_path)?);
    if fast {
        command.arg("--no-sync");
    }
    run_as_user(&mut command, run_as);
    tracing::info!(data_dir = %data_dir.display(), "initializing a new PostgreSQL cluster");
    let status = command.status().map_err(io_err("running initdb"))?;
    if !status.success() {
        return Err(EmbeddedPgError::InitdbFailed {
            status,
            log: log_path.to_path_buf(),
            tail: log_tail(log_path),
        });
    }
    fs::rename(&scratch, pgdata).map_err(io_err(format!(
        "moving the new cluster into {}",
        pgdata.display()
    )))
}

/// Refuses to start a cluster made by another major version: `postgres` would refuse too, but
/// with a message that does not say what to do.
fn check_version(bin_dir: &Path, pgdata: &Path) -> Result<(), EmbeddedPgError> {
    let data_version = fs::read_to_string(pgdata.join("PG_VERSION"))
        .map_err(io_err(format!(
            "reading {}",
            pgdata.join("PG_VERSION").display()
        )))?
        .trim()
        .to_owned();
    // `postgres --version` is answered before the root check, so it runs as anyone.
    let output = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(io_err("running postgres --version"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": the major version is the first
    // component from PostgreSQL 10 on (`9.6` before).
    let Some(bin_version) = text.split_whitespace().nth(2).map(str::to_owned) else {
        return Ok(());
    };
    let major_matches = bin_version == data_version
        || bin_version
            .strip_prefix(&data_version)
            .is_some_and(|rest| rest.starts_with('.'));
    if major_matches {
        Ok(())
    } else {
        Err(EmbeddedPgError::VersionMismatch {
            data_dir: pgdata.to_path_buf(),
            data_version,
            bin_dir: bin_dir.to_path_buf(),
            bin_version,
        })
    }
}

/// The user to run PostgreSQL as: `None` to stay ourselves, the `postgres` user when root.
fn service_user() -> Result<Option<User>, EmbeddedPgError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name(SERVICE_USER).map_err(sys_err("looking up the postgres system user"))? {
        Some(user) => Ok(Some(user)),
        None => Err(EmbeddedPgError::NoServiceUser),
    }
}

fn run_as_user(command: &mut Command, user: Option<&User>) {
    if let Some(user) = user {
        // std drops supplementary groups too when it switches away from root.
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

fn chown_to(path: &Path, user: &User) -> Result<(), EmbeddedPgError> {
    std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw())).map_err(
        io_err(format!("handing {} to the postgres user", path.display())),
    )
}

/// Makes `dir` mode 0700 and, when PostgreSQL runs as another user, owned by that user.
fn private_dir(dir: &Path, owner: Option<&User>) -> Result<(), EmbeddedPgError> {
    if let Some(user) = owner {
        chown_to(dir, user)?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("making {} private", dir.display())))
}

/// PostgreSQL, running as `user`, must be able to traverse every ancestor of its data
/// directory. Ancestors it cannot traverse get the search bit for others (not the read bit:
/// their listings stay private); temporary directories are typically 0700 and root-owned.
fn make_reachable(data_dir: &Path, user: &User) -> Result<(), EmbeddedPgError> {
    for ancestor in data_dir.ancestors().skip(1) {
        let meta =
            fs::metadata(ancestor).map_err(io_err(format!("inspecting {}", ancestor.display())))?;
        let mode = std::os::unix::fs::MetadataExt::mode(&meta);
        let uid = std::os::unix::fs::MetadataExt::uid(&meta);
        let gid = std::os::unix::fs::MetadataExt::gid(&meta);
        let traversable = mode & 0o001 != 0
            || (uid == user.uid.as_raw() && mode & 0o100 != 0)
            || (gid == user.gid.as_raw() && mode & 0o010 != 0);
        if !traversable {
            tracing::warn!(
                dir = %ancestor.display(),
                "adding search permission for others so the postgres user can reach its data directory"
            );
            fs::set_permissions(
                ancestor,
                fs::Permissions::from_mode((mode & 0o7777) | 0o001),
            )
            .map_err(io_err(format!(
                "making {} traversable for the postgres user",
                ancestor.display()
            )))?;
        }
    }
    Ok(())
}

/// Opens the log for this run, keeping the previous run's as `postgres.log.1`.
fn open_log(path: &Path, owner: Option<&User>) -> Result<fs::File, EmbeddedPgError> {
    if path.exists() {
        let previous = path.with_extension("log.1");
        fs::rename(path, &previous).map_err(io_err(format!("rotating {}", path.display())))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    if let Some(user) = owner {
        chown_to(path, user)?;
    }
    Ok(file)
}

fn clone_log(log: &fs::File, path: &Path) -> Result<fs::File, EmbeddedPgError> {
    log.try_clone().map_err(io_err(format!(
        "duplicating the handle of {}",
        path.display()
    )))
}

/// The last lines of the log, on one line, for error messages.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return "(log unreadable)".into();
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "(log empty)".into()
    } else {
        tail
    }
}

/// Where to look for the binaries: the explicit list, or the automatic search.
fn candidate_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output();
    if let Ok(output) = pg_config {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() && !dir.is_empty() {
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs.extend(debian_bin_dirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// `<root>/<version>/bin`, newest version first (Debian installs versions side by side).
fn debian_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            key.map(|k| (k, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn find_bin_dir(explicit: Option<Vec<PathBuf>>) -> Result<PathBuf, EmbeddedPgError> {
    let searched = explicit.unwrap_or_else(candidate_bin_dirs);
    searched
        .iter()
        .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")))
        .cloned()
        .ok_or(EmbeddedPgError::BinariesNotFound { searched })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Percent-encodes a URL query value or path segment (everything but unreserved characters
/// and `/`, which socket paths are made of).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;

    use super::*;

    #[test]
    fn missing_binaries_error_is_one_line_with_the_fix() {
        let empty = tempfile::tempdir().expect("tempdir");
        let data = tempfile::tempdir().expect("tempdir");
        let options = Options {
            bin_dirs: Some(vec![empty.path().to_path_buf()]),
            ..Options::default()
        };
        let err =
            EmbeddedPostgres::start_with(data.path(), options).expect_err("no binaries there");
        let message = err.to_string();
        assert!(
            matches!(err, EmbeddedPgError::BinariesNotFound { .. }),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(
            message.contains(&empty.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn debian_versions_sort_newest_first() {
        let root = tempfile::tempdir().expect("tempdir");
        for v in ["9.6", "15", "13", "not-a-version", "17"] {
            fs::create_dir_all(root.path().join(v).join("bin")).expect("mkdir");
        }
        let dirs: Vec<String> = debian_bin_dirs(root.path())
            .iter()
            .map(|d| {
                d.strip_prefix(root.path())
                    .expect("prefix")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(dirs, ["17/bin", "15/bin", "13/bin", "9.6/bin"]);
    }

    #[test]
    fn url_is_accepted_by_sqlx_and_names_the_socket() {
        let pg = EmbeddedPostgres {
            data_dir: "/tmp/x y".into(),
            socket_dir: "/tmp/x y/run&more".into(),
            log_path: "/tmp/x y/postgres.log".into(),
            postgres_pid: None,
            watchdog: None,
            lifeline: None,
            remove_data_dir_on_exit: false,
        };
        let url = pg.url("app_db");
        let options = PgConnectOptions::from_str(&url).expect("sqlx parses the URL");
        assert_eq!(
            options.get_socket(),
            Some(&PathBuf::from("/tmp/x y/run&more"))
        );
        assert_eq!(options.get_username(), SUPERUSER);
        assert_eq!(options.get_database(), Some("app_db"));
        assert_eq!(options.get_port(), PORT);
    }
}
