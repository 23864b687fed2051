//! Which images the Docker backend runs. Images are settings: by default the offline ones
//! `just images` builds (`regiondrill/*`) when they exist locally, else the official ones a
//! user with a registry can pull. Each can be overridden by an environment variable.

use serde::{Deserialize, Serialize};

/// Environment variables overriding each image.
pub const DB_ENV: &str = "REGIONDRILL_IMAGE_DB";
/// See [`DB_ENV`].
pub const CACHE_ENV: &str = "REGIONDRILL_IMAGE_CACHE";
/// See [`DB_ENV`].
pub const APP_ENV: &str = "REGIONDRILL_IMAGE_APP";
/// See [`DB_ENV`].
pub const PROXY_ENV: &str = "REGIONDRILL_IMAGE_PROXY";

/// Which image set to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ImageChoice {
    /// The offline images when `regiondrill/postgres:15` exists locally, else the official.
    Auto,
    /// `regiondrill/*`, built by `just images` from Debian packages.
    Local,
    /// `postgres:15`, `redis:7`, `ghcr.io/shopify/toxiproxy`, and `regiondrill/app`.
    Official,
}

/// The image of each role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Images {
    /// PostgreSQL: must have `initdb`, `postgres`, `pg_basebackup` on `PATH`, a `postgres`
    /// user, and `sh` (the harness runs its own commands, not the image's entrypoint).
    pub db: String,
    /// Redis: `redis-server` on `PATH`.
    pub cache: String,
    /// The sample app: `regiondrill-app` on `PATH`.
    pub app: String,
    /// The fault proxy: `regiondrill/*` runs `regiondrill proxy`; any other image is taken to
    /// be Toxiproxy's (its own entrypoint, `-host=0.0.0.0`).
    pub proxy: String,
}

impl Images {
    /// The images `just images` builds.
    pub fn local() -> Images {
        Images {
            db: "regiondrill/postgres:15".into(),
            cache: "regiondrill/redis:7".into(),
            app: "regiondrill/app:latest".into(),
            proxy: "regiondrill/toxiproxy:latest".into(),
        }
    }

    /// The official images (and the app image, which only this repository builds).
    pub fn official() -> Images {
        Images {
            db: "postgres:15".into(),
            cache: "redis:7".into(),
            app: "regiondrill/app:latest".into(),
            proxy: "ghcr.io/shopify/toxiproxy:2.12.0".into(),
        }
    }

    /// The set for `choice` (`local_exists`: whether the offline images are present), with
    /// the environment's overrides applied.
    pub fn resolve(choice: ImageChoice, local_exists: bool) -> Images {
        let mut images = match choice {
            ImageChoice::Local => Images::local(),
            ImageChoice::Official => Images::official(),
            ImageChoice::Auto if local_exists => Images::local(),
            ImageChoice::Auto => Images::official(),
        };
        for (var, slot) in [
            (DB_ENV, &mut images.db),
            (CACHE_ENV, &mut images.cache),
            (APP_ENV, &mut images.app),
            (PROXY_ENV, &mut images.proxy),
        ] {
            if let Ok(v) = std::env::var(var) {
                if !v.is_empty() {
                    *slot = v;
                }
            }
        }
        images
    }

    /// Whether the proxy image is regiondrill's own (else Toxiproxy's).
    pub fn proxy_is_builtin(&self) -> bool {
        self.proxy.starts_with("regiondrill/")
    }

    /// Every image, for existence checks.
    pub fn all(&self) -> [&str; 4] {
        [&self.db, &self.cache, &self.app, &self.proxy]
    }
}

/// Splits `repo[:tag]` (the repository may contain a registry host with a port).
pub fn split(image: &str) -> (&str, &str) {
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_and_tags() {
        assert_eq!(split("postgres:15"), ("postgres", "15"));
        assert_eq!(
            split("ghcr.io/shopify/toxiproxy:2.12.0"),
            ("ghcr.io/shopify/toxiproxy", "2.12.0")
        );
        assert_eq!(
            split("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
        assert_eq!(split("redis"), ("redis", "latest"));
    }

    #[test]
    fn auto_prefers_the_offline_images_when_present() {
        assert_eq!(
            Images::resolve(ImageChoice::Auto, true).db,
            "regiondrill/postgres:15"
        );
        assert_eq!(Images::resolve(ImageChoice::Auto, false).db, "postgres:15");
        assert!(Images::local().proxy_is_builtin());
        assert!(!Images::official().proxy_is_builtin());
    }
}
