//! The two executables and how one finds the other.
//!
//! `dualchain` (the validator: `run`, `keygen`, `genesis`, `snapshot`) forwards
//! `devnet`, `loadgen`, `status`, `bench` and `sim` to `dualchain-tools`, which links
//! the heavier client side (kube, plotting); `dualchain-tools devnet` starts
//! `dualchain run` processes. Each looks for the other **next to its own executable**
//! first (a cargo target directory, `/usr/local/bin` in the image), then on `PATH`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The validator binary.
pub const VALIDATOR_BIN: &str = "dualchain";
/// The tools binary.
pub const TOOLS_BIN: &str = "dualchain-tools";
/// Environment variable naming the `dualchain` binary a devnet starts validators
/// with; `dualchain` sets it (to itself) when it forwards to `dualchain-tools`.
pub const NODE_BINARY_ENV: &str = "DUALCHAIN_NODE_BINARY";

/// `name` with the platform's executable suffix.
pub fn executable_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// Finds executable `name`: next to `beside` (an executable's path) if given, else in
/// one of the directories of `path_var` (a `PATH`-style list).
pub fn find_executable(
    name: &str,
    beside: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Option<PathBuf> {
    let file = executable_name(name);
    let sibling = beside
        .and_then(Path::parent)
        .map(|dir| dir.join(&file))
        .filter(|p| is_executable(p));
    sibling.or_else(|| {
        std::env::split_paths(path_var?)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(&file))
            .find(|p| is_executable(p))
    })
}

/// Finds executable `name` next to the running executable, else on `PATH`.
pub fn find_companion(name: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok();
    let path = std::env::var_os("PATH");
    find_executable(name, me.as_deref(), path.as_deref())
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, mode: u32) {
        std::fs::write(path, b"#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
    }

    #[test]
    fn sibling_first_then_path_and_never_a_non_executable() {
        let base = std::env::temp_dir().join(format!("dualchain-contract-{}", std::process::id()));
        let (here, elsewhere) = (base.join("here"), base.join("elsewhere"));
        std::fs::create_dir_all(&here).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        let me = here.join(executable_name(VALIDATOR_BIN));
        touch(&me, 0o755);
        let path_var = std::env::join_paths([&elsewhere]).unwrap();

        assert_eq!(find_executable(TOOLS_BIN, Some(&me), Some(&path_var)), None);
        let on_path = elsewhere.join(executable_name(TOOLS_BIN));
        touch(&on_path, 0o755);
        assert_eq!(
            find_executable(TOOLS_BIN, Some(&me), Some(&path_var)),
            Some(on_path.clone())
        );
        let sibling = here.join(executable_name(TOOLS_BIN));
        touch(&sibling, 0o644);
        #[cfg(unix)]
        assert_eq!(
            find_executable(TOOLS_BIN, Some(&me), Some(&path_var)),
            Some(on_path),
            "a file without the executable bit is not a candidate"
        );
        touch(&sibling, 0o755);
        assert_eq!(
            find_executable(TOOLS_BIN, Some(&me), Some(&path_var)),
            Some(sibling)
        );
        assert_eq!(find_executable(TOOLS_BIN, None, None), None);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
