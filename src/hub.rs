//! Files from the Hugging Face Hub, through hf-hub's cache (the Hub's own layout:
//! `models--org--name/{refs/<revision>, snapshots/<commit>/<file>, blobs/}`).
//!
//! hf-hub 0.5's blocking API is used with the cache folder passed explicitly, because its
//! `Api::new()` ignores `HF_HOME`, and it does not read `HF_HUB_OFFLINE` at all
//! (docs/models.md, "Hub cache"). So this module resolves the cache folder itself
//! (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`), looks there first
//! (also for a commit hash, which hf-hub only finds through a ref), and goes to the network
//! only when `HF_HUB_OFFLINE` is unset.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

/// Where and how to look for Hub files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// The cache folder (the one holding `models--*`).
    pub cache: PathBuf,
    /// Never use the network.
    pub offline: bool,
    /// Hub endpoint (`HF_ENDPOINT`), when not the default.
    pub endpoint: Option<String>,
}

impl HubSettings {
    /// From `HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE` and `HF_ENDPOINT`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            cache: cache_dir(var("HF_HUB_CACHE"), var("HF_HOME"), var("HOME")),
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            endpoint: var("HF_ENDPOINT"),
        }
    }
}

/// The Hub cache folder from the environment values (as `huggingface_hub` resolves it).
pub fn cache_dir(
    hf_hub_cache: Option<String>,
    hf_home: Option<String>,
    home: Option<String>,
) -> PathBuf {
    if let Some(dir) = hf_hub_cache {
        return dir.into();
    }
    let home_dir = hf_home.map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&home.unwrap_or_else(|| ".".into()))
            .join(".cache")
            .join("huggingface")
    });
    home_dir.join("hub")
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// The local path of `file` in model repository `repo` at `revision` (a branch, tag or
/// commit), downloading it into the cache unless `settings.offline`.
pub fn resolve(settings: &HubSettings, repo: &str, revision: &str, file: &str) -> Result<PathBuf> {
    let hub_err = |message: String| Error::Hub {
        repo: repo.to_owned(),
        revision: revision.to_owned(),
        file: file.to_owned(),
        cache: settings.cache.clone(),
        message,
    };
    if !repo.contains('/') || repo.starts_with('/') || repo.ends_with('/') {
        return Err(hub_err("a Hub model id is `org/name`".into()));
    }
    let model = Repo::with_revision(repo.to_owned(), RepoType::Model, revision.to_owned());
    if let Some(path) = Cache::new(settings.cache.clone())
        .repo(model.clone())
        .get(file)
    {
        return Ok(path);
    }
    if is_commit(revision) {
        let path = settings
            .cache
            .join(model.folder_name())
            .join("snapshots")
            .join(revision)
            .join(file);
        if path.is_file() {
            return Ok(path);
        }
    }
    if settings.offline {
        return Err(hub_err(
            "not in the cache, and HF_HUB_OFFLINE is set; download it once with network access, or point HF_HOME / HF_HUB_CACHE at a cache that has it".into(),
        ));
    }
    let mut builder =
        ApiBuilder::from_cache(Cache::new(settings.cache.clone())).with_progress(false);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder
        .build()
        .map_err(|e| hub_err(format!("cannot set up the Hub client: {e}")))?;
    api.repo(model).get(file).map_err(|e| {
        hub_err(format!(
            "not in the cache, and downloading failed: {e}; check the id, the revision and the network, or set HF_HUB_OFFLINE=1 to use only the cache"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache in the Hub's layout: blob, snapshot link, and `refs/main` without a newline.
    fn fake_cache(root: &Path, commit: &str) {
        let repo = root.join("models--org--tiny");
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
        std::fs::write(repo.join("blobs").join("abc123"), b"weights").unwrap();
        std::os::unix::fs::symlink(
            "../../blobs/abc123",
            repo.join("snapshots")
                .join(commit)
                .join("model.safetensors"),
        )
        .unwrap();
        std::fs::write(repo.join("refs").join("main"), commit).unwrap();
    }

    #[test]
    fn resolves_branch_and_commit_from_the_cache_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        fake_cache(dir.path(), commit);
        let offline = HubSettings {
            cache: dir.path().to_owned(),
            offline: true,
            endpoint: None,
        };
        let by_branch = resolve(&offline, "org/tiny", "main", "model.safetensors").unwrap();
        assert_eq!(std::fs::read(&by_branch).unwrap(), b"weights");
        let by_commit = resolve(&offline, "org/tiny", commit, "model.safetensors").unwrap();
        assert_eq!(by_commit, by_branch);
        let err = resolve(&offline, "org/tiny", "main", "config.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("org/tiny@main: config.json")
                && err.contains("HF_HUB_OFFLINE")
                && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
        // Online with an unreachable endpoint: the download error names the file too.
        let online = HubSettings {
            offline: false,
            endpoint: Some("http://127.0.0.1:9".into()),
            ..offline.clone()
        };
        let err = resolve(&online, "org/other", "main", "model.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("org/other@main: model.safetensors") && err.contains("downloading failed"),
            "{err}"
        );
        assert!(resolve(&offline, "tiny", "main", "x").is_err());
    }

    #[test]
    fn cache_folder_follows_the_environment_precedence() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(cache_dir(s("/c"), s("/h"), s("/u")), PathBuf::from("/c"));
        assert_eq!(cache_dir(None, s("/h"), s("/u")), PathBuf::from("/h/hub"));
        assert_eq!(
            cache_dir(None, None, s("/u")),
            PathBuf::from("/u/.cache/huggingface/hub")
        );
        assert!(is_true("1") && is_true("TRUE") && !is_true("0"));
    }
}
