//! Compiles `proto/dualchain/v1/*.proto` without a system `protoc`.
//!
//! 1. `protox::compile` parses and links the .proto files in pure Rust and
//!    returns a `FileDescriptorSet` (with source info, so the .proto comments
//!    become rustdoc on the generated types).
//! 2. The set is encoded to `$OUT_DIR/dualchain_v1_descriptor.bin`, which the
//!    crate embeds as `FILE_DESCRIPTOR_SET` for gRPC server reflection.
//! 3. `tonic_prost_build::compile_fds` generates messages, clients and servers
//!    from that set; prost-build never invokes `protoc` on this path.

use std::{
    env, fs,
    io::{self, ErrorKind},
    path::{Path, PathBuf},
};

use protox::prost::Message as _;

/// Include root: imports are written as `dualchain/v1/<file>.proto`.
const PROTO_ROOT: &str = "proto";
/// Directory holding the `dualchain.v1` package.
const PACKAGE_DIR: &str = "proto/dualchain/v1";
/// Name of the encoded descriptor set in `OUT_DIR`.
const DESCRIPTOR_FILE: &str = "dualchain_v1_descriptor.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);

    let protos = proto_files(Path::new(PACKAGE_DIR))?;

    // Rebuild only when the .proto files change (the directory entry catches
    // added or removed files), or this script itself.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={PACKAGE_DIR}");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let fds = protox::compile(&protos, [PROTO_ROOT])?;

    fs::write(out_dir.join(DESCRIPTOR_FILE), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;

    Ok(())
}

/// The `.proto` files directly in `dir`, sorted for a deterministic build.
fn proto_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(io::Error::new(
            ErrorKind::NotFound,
            format!("no .proto files in {}", dir.display()),
        ));
    }
    files.sort();
    Ok(files)
}
