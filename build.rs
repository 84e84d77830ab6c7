//! Compiles proto/ (carthouse's own protobuf messages) with prost-build and a vendored protoc,
//! so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(
        &["proto/carthouse/v1/flight_actions.proto"],
        &["proto", &include.to_string_lossy()],
    )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
