// Generates the C header from src/ffi/ with cbindgen into OUT_DIR/chip.h; with CHIP_UPDATE_HEADER=1 it
// also writes the checked-in include/chip.h (tests/abi.rs fails when the two differ). Links the cdylib
// with a version script so only chip_* symbols are exported.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CHIP_UPDATE_HEADER");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out_dir = std::env::var("OUT_DIR").unwrap();

    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        let script = Path::new(&out_dir).join("chip.map");
        std::fs::write(&script, "{\n  global: chip_*;\n  local: *;\n};\n").expect("write version script");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", script.display());
        // ONNX Runtime is installed beside libchip.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
        // Programs linked against libchip then record "libchip.so", not the build path.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libchip.so");
    }

    let mut config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    let v = |k: &str| std::env::var(k).unwrap();
    config.after_includes = Some(format!(
        "\n#define CHIP_VERSION_MAJOR {}\n#define CHIP_VERSION_MINOR {}\n#define CHIP_VERSION_PATCH {}\n\
         #define CHIP_VERSION_STRING \"{}\"\n\n\
         /* Layer index of the Refined CHIP map in the chip_explanation_map* functions. */\n\
         #define CHIP_REFINED SIZE_MAX\n",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    // cbindgen follows the `mod` items of src/ffi/mod.rs into its files.
    match cbindgen::Builder::new().with_config(config).with_src(format!("{crate_dir}/src/ffi/mod.rs")).generate() {
        Ok(bindings) => {
            let generated = Path::new(&out_dir).join("chip.h");
            bindings.write_to_file(&generated);
            let update = std::env::var("CHIP_UPDATE_HEADER").is_ok_and(|v| !v.is_empty() && v != "0");
            let checked_in = Path::new(&crate_dir).join("include/chip.h");
            if update || !checked_in.exists() {
                std::fs::create_dir_all(checked_in.parent().unwrap()).unwrap();
                std::fs::copy(&generated, &checked_in).expect("write include/chip.h");
            }
        }
        Err(e) => panic!("cbindgen failed on src/ffi/: {e}"),
    }
}
