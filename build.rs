//! Build script: recompiles when migrations change (they are embedded), and compiles
//! the PostgreSQL half of the integration suite only when the tests are pointed at a
//! server with `LATCH_TEST_DATABASE_URL`.

fn main() {
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rerun-if-env-changed=LATCH_TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(latch_postgres_tests)");
    if std::env::var_os("LATCH_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=latch_postgres_tests");
    }
}
