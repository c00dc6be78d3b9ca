//! Server configuration from the environment.
//!
//! | variable | default |
//! | --- | --- |
//! | `SYNCLINE_BIND` | `127.0.0.1:8080` |
//! | `DATABASE_URL` | unset: a private PostgreSQL cluster under `<data dir>/postgres` |
//! | `SYNCLINE_DATA_DIR` | `./syncline-data` |
//! | `SYNCLINE_JWT_SECRET` | unset: a random secret kept in `<data dir>/jwt-secret` (mode 0600) |
//! | `SYNCLINE_ACCESS_TOKEN_TTL_SECS` | `900` |
//! | `SYNCLINE_REFRESH_TOKEN_TTL_SECS` | `2592000` (30 days) |
//! | `SYNCLINE_RATE_LIMIT_PER_MINUTE` | `600` (REST bridge requests per user or API key) |
//!
//! Empty values count as unset, so `DATABASE_URL=` in a compose file means "embedded".
//! Parsing ([`Config::from_lookup`]) touches nothing; the generated JWT secret is read or
//! created only by [`Config::jwt_secret`].

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./syncline-data";
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 900;
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// HS256 keys shorter than the hash output weaken it (RFC 7518 §3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The file under the data directory holding the generated secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },

    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{} holds a JWT secret shorter than {MIN_JWT_SECRET_BYTES} bytes: delete it to generate \
         a new one (signing everyone out) or set SYNCLINE_JWT_SECRET",
        path.display()
    )]
    ShortSecretFile { path: PathBuf },
}

/// The server's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub bind: SocketAddr,
    /// `None`: run the embedded PostgreSQL cluster under [`Config::postgres_dir`].
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    /// `SYNCLINE_JWT_SECRET`, if given; see [`Config::jwt_secret`].
    pub jwt_secret_env: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// REST bridge requests a minute per user and per API key (see `rest::rate_limit`).
    pub rate_limit_per_minute: u32,
}

impl std::fmt::Debug for Config {
    // The secret and the database URL (it may hold a password) stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &self.database_url.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field(
                "jwt_secret_env",
                &self.jwt_secret_env.as_ref().map(|_| "<set>"),
            )
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .finish()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());

        let bind =
            match get("SYNCLINE_BIND") {
                Some(v) => v.trim().parse().map_err(|e: std::net::AddrParseError| {
                    ConfigError::Invalid {
                        var: "SYNCLINE_BIND",
                        value: v.clone(),
                        reason: format!("{e} (expected host:port, e.g. 0.0.0.0:8080)"),
                    }
                })?,
                None => DEFAULT_BIND
                    .parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                        var: "SYNCLINE_BIND",
                        value: DEFAULT_BIND.into(),
                        reason: e.to_string(),
                    })?,
            };

        let jwt_secret_env = get("SYNCLINE_JWT_SECRET");
        if jwt_secret_env
            .as_ref()
            .is_some_and(|s| s.len() < MIN_JWT_SECRET_BYTES)
        {
            return Err(ConfigError::Invalid {
                var: "SYNCLINE_JWT_SECRET",
                // Never echo a secret, even a bad one.
                value: "<redacted>".into(),
                reason: format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            });
        }

        Ok(Self {
            bind,
            database_url: get("DATABASE_URL"),
            data_dir: PathBuf::from(
                get("SYNCLINE_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            ),
            jwt_secret_env,
            access_token_ttl: ttl(
                "SYNCLINE_ACCESS_TOKEN_TTL_SECS",
                get("SYNCLINE_ACCESS_TOKEN_TTL_SECS"),
                DEFAULT_ACCESS_TOKEN_TTL_SECS,
            )?,
            refresh_token_ttl: ttl(
                "SYNCLINE_REFRESH_TOKEN_TTL_SECS",
                get("SYNCLINE_REFRESH_TOKEN_TTL_SECS"),
                DEFAULT_REFRESH_TOKEN_TTL_SECS,
            )?,
            rate_limit_per_minute: rate_limit(get("SYNCLINE_RATE_LIMIT_PER_MINUTE"))?,
        })
    }

    /// Where the embedded PostgreSQL cluster lives.
    pub fn postgres_dir(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }

    /// The JWT signing secret: `SYNCLINE_JWT_SECRET`, or else the one generated on first start
    /// and kept in `<data dir>/jwt-secret` (mode 0600), so sessions survive restarts.
    pub fn jwt_secret(&self) -> Result<Vec<u8>, ConfigError> {
        match &self.jwt_secret_env {
            Some(secret) => Ok(secret.as_bytes().to_vec()),
            None => load_or_create_secret(&self.data_dir),
        }
    }
}

fn ttl(var: &'static str, value: Option<String>, default: u64) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(Duration::from_secs(default));
    };
    match value.trim().parse::<u64>() {
        // Keep well inside i64 seconds: the JWT expiry is an i64 Unix time.
        Ok(secs) if secs > 0 && secs <= 100 * 365 * 24 * 3600 => Ok(Duration::from_secs(secs)),
        _ => Err(ConfigError::Invalid {
            var,
            value,
            reason: "expected a positive number of seconds (at most 100 years)".into(),
        }),
    }
}

fn rate_limit(value: Option<String>) -> Result<u32, ConfigError> {
    let Some(value) = value else {
        return Ok(crate::rest::rate_limit::DEFAULT_PER_MINUTE);
    };
    match value.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            var: "SYNCLINE_RATE_LIMIT_PER_MINUTE",
            value,
            reason: "expected a positive number of requests".into(),
        }),
    }
}

/// Reads the secret file, or creates it with 32 random bytes (base64url text, so it can be
/// copied into `SYNCLINE_JWT_SECRET` to share it between nodes). The text is the key.
fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join(JWT_SECRET_FILE);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { what, path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io("creating the data directory", data_dir))?;

    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let fresh = URL_SAFE_NO_PAD.encode(bytes);
    // create_new: of two servers starting at once on one data directory, exactly one writes
    // the secret and both use it.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io("writing the JWT secret to", &path))?;
            tracing::info!(path = %path.display(), "generated a new JWT signing secret");
            Ok(fresh.into_bytes())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mut text = String::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(io("reading the JWT secret from", &path))?;
            let secret = text.trim();
            if secret.len() < MIN_JWT_SECRET_BYTES {
                return Err(ConfigError::ShortSecretFile { path });
            }
            Ok(secret.as_bytes().to_vec())
        }
        Err(e) => Err(io("creating the JWT secret file", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).expect("defaults parse");
        assert_eq!(c.bind, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(c.database_url, None);
        assert_eq!(c.data_dir, PathBuf::from("./syncline-data"));
        assert_eq!(c.postgres_dir(), PathBuf::from("./syncline-data/postgres"));
        assert_eq!(c.jwt_secret_env, None);
        assert_eq!(c.access_token_ttl, Duration::from_secs(900));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(c.rate_limit_per_minute, 600);
    }

    #[test]
    fn explicit_values() {
        let c = parse(&[
            ("SYNCLINE_BIND", "0.0.0.0:9000"),
            ("DATABASE_URL", "postgres://u:p@db/app"),
            ("SYNCLINE_DATA_DIR", "/var/lib/syncline"),
            ("SYNCLINE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("SYNCLINE_ACCESS_TOKEN_TTL_SECS", "60"),
            ("SYNCLINE_REFRESH_TOKEN_TTL_SECS", " 3600 "),
            ("SYNCLINE_RATE_LIMIT_PER_MINUTE", "5"),
        ])
        .expect("parse");
        assert_eq!(c.bind, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:p@db/app"));
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/syncline"));
        assert_eq!(c.access_token_ttl, Duration::from_secs(60));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(3600));
        assert_eq!(c.rate_limit_per_minute, 5);
        assert_eq!(
            c.jwt_secret().expect("secret"),
            b"0123456789abcdef0123456789abcdef"
        );
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("0123456789abcdef") && !debug.contains("u:p@"),
            "{debug}"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = parse(&[("DATABASE_URL", ""), ("SYNCLINE_BIND", "  ")]).expect("parse");
        assert_eq!(c.database_url, None);
        assert_eq!(c.bind, "127.0.0.1:8080".parse().expect("addr"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("SYNCLINE_BIND", "localhost"),
            ("SYNCLINE_ACCESS_TOKEN_TTL_SECS", "0"),
            ("SYNCLINE_ACCESS_TOKEN_TTL_SECS", "15m"),
            ("SYNCLINE_REFRESH_TOKEN_TTL_SECS", "-5"),
            ("SYNCLINE_RATE_LIMIT_PER_MINUTE", "0"),
            ("SYNCLINE_JWT_SECRET", "too-short"),
        ];
        for (var, value) in cases {
            let err = parse(&[(var, value)]).expect_err(value);
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, .. } if *v == var),
                "{err}"
            );
            assert!(err.to_string().starts_with(var), "{err}");
        }
        let err = parse(&[("SYNCLINE_JWT_SECRET", "too-short")]).expect_err("short");
        assert!(
            !err.to_string().contains("too-short"),
            "secret not echoed: {err}"
        );
    }

    #[test]
    fn generated_secret_is_persisted_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let data_dir_str = data_dir.to_str().expect("utf-8 path");
        let c = parse(&[("SYNCLINE_DATA_DIR", data_dir_str)]).expect("parse");
        let first = c.jwt_secret().expect("generate");
        assert!(first.len() >= MIN_JWT_SECRET_BYTES);
        let path = data_dir.join(JWT_SECRET_FILE);
        let mode = std::fs::metadata(&path)
            .expect("secret file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            c.jwt_secret().expect("reuse"),
            first,
            "same secret on the next start"
        );

        std::fs::write(&path, "short").expect("overwrite");
        assert!(matches!(
            c.jwt_secret(),
            Err(ConfigError::ShortSecretFile { .. })
        ));
    }
}
