//! Settings of the effect workers, webhooks and email, from the environment.
//!
//! | variable | default |
//! | --- | --- |
//! | `SYNCLINE_EFFECT_WORKERS` | `2` concurrent jobs per process; `0` runs no workers (the outbox still fills) |
//! | `SYNCLINE_EFFECT_MAX_ATTEMPTS` | `8`, then the job is dead-lettered |
//! | `SYNCLINE_EFFECT_TIME_SCALE` | `1.0`: multiplies every retry delay and schedule (tests use 0.001) |
//! | `SYNCLINE_WEBHOOK_ALLOW_PRIVATE` | `false`: webhook URLs resolving to private, loopback or link-local addresses are refused |
//! | `SYNCLINE_SMTP_URL` | unset: emails are written as `.eml` files to the mailbox folder |
//! | `SYNCLINE_MAILBOX_DIR` | `<data dir>/mailbox` |
//! | `SYNCLINE_EMAIL_FROM` | `Syncline <no-reply@syncline.local>` |

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;

#[derive(Debug, Clone)]
pub struct EffectsSettings {
    /// Jobs one process runs at once; 0 disables the workers of this process.
    pub workers: usize,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// How often idle workers look for due jobs (they are also woken by local commits).
    pub poll_interval: Duration,
    /// A running job not finished after this long is given back to the queue (its worker died).
    pub stuck_after: Duration,
    /// Multiplies retry delays, webhook schedules and digest periods (1.0 in production).
    pub time_scale: f64,
    /// Allow webhook URLs that resolve to loopback or private addresses (tests, dev).
    pub webhook_allow_private: bool,
    /// Timeout of one webhook request.
    pub webhook_timeout: Duration,
    /// `smtp://host:port` (or `smtps://`): send emails over SMTP instead of the mailbox folder.
    pub smtp_url: Option<String>,
    /// Where emails go as `.eml` files when no SMTP server is configured.
    pub mailbox_dir: PathBuf,
    /// The From header of every email.
    pub email_from: String,
}

impl Default for EffectsSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            max_attempts: 8,
            poll_interval: Duration::from_millis(500),
            stuck_after: Duration::from_secs(300),
            time_scale: 1.0,
            webhook_allow_private: false,
            webhook_timeout: Duration::from_secs(15),
            smtp_url: None,
            mailbox_dir: PathBuf::from(crate::config::DEFAULT_DATA_DIR).join("mailbox"),
            email_from: "Syncline <no-reply@syncline.local>".into(),
        }
    }
}

impl EffectsSettings {
    /// Scales a nominal delay by [`Self::time_scale`].
    pub fn scaled(&self, nominal: Duration) -> Duration {
        nominal.mul_f64(self.time_scale.max(0.0))
    }

    /// Reads the settings through `lookup`; `data_dir` is where the default mailbox lives.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        data_dir: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let mut s = Self {
            mailbox_dir: data_dir.join("mailbox"),
            ..Self::default()
        };
        fn parse<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    var,
                    value: value.clone(),
                    reason: e.to_string(),
                })
        }
        if let Some(v) = get("SYNCLINE_EFFECT_WORKERS") {
            s.workers = parse("SYNCLINE_EFFECT_WORKERS", v)?;
        }
        if let Some(v) = get("SYNCLINE_EFFECT_MAX_ATTEMPTS") {
            s.max_attempts = parse("SYNCLINE_EFFECT_MAX_ATTEMPTS", v)?;
        }
        if let Some(v) = get("SYNCLINE_EFFECT_TIME_SCALE") {
            let scale: f64 = parse("SYNCLINE_EFFECT_TIME_SCALE", v.clone())?;
            if !(scale.is_finite() && scale >= 0.0) {
                return Err(ConfigError::Invalid {
                    var: "SYNCLINE_EFFECT_TIME_SCALE",
                    value: v,
                    reason: "must be a finite number >= 0".into(),
                });
            }
            s.time_scale = scale;
        }
        if let Some(v) = get("SYNCLINE_WEBHOOK_ALLOW_PRIVATE") {
            s.webhook_allow_private = parse("SYNCLINE_WEBHOOK_ALLOW_PRIVATE", v)?;
        }
        s.smtp_url = get("SYNCLINE_SMTP_URL");
        if let Some(v) = get("SYNCLINE_MAILBOX_DIR") {
            s.mailbox_dir = PathBuf::from(v);
        }
        if let Some(v) = get("SYNCLINE_EMAIL_FROM") {
            s.email_from = v;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_overrides_and_refuses_nonsense() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let s = EffectsSettings::from_lookup(
            env(&[
                ("SYNCLINE_EFFECT_WORKERS", "0"),
                ("SYNCLINE_EFFECT_TIME_SCALE", "0.01"),
                ("SYNCLINE_WEBHOOK_ALLOW_PRIVATE", "true"),
            ]),
            std::path::Path::new("/data"),
        )
        .expect("valid");
        assert_eq!(s.workers, 0);
        assert_eq!(s.scaled(Duration::from_secs(100)), Duration::from_secs(1));
        assert!(s.webhook_allow_private);
        assert_eq!(s.mailbox_dir, PathBuf::from("/data/mailbox"));
        let bad = EffectsSettings::from_lookup(
            env(&[("SYNCLINE_EFFECT_TIME_SCALE", "-1")]),
            std::path::Path::new("/data"),
        );
        assert!(bad.is_err());
    }
}
