//! A deliberately failing guest test. It is built only with the `vm-selftest-fail`
//! feature, by the harness self-test in vm_harness.rs, to prove that a failure inside
//! the VM fails the whole run. It is never part of the normal guest test set.

#[test]
fn passes_in_the_guest() {
    berth_tests::require_guest();
}

#[test]
fn deliberately_fails() {
    berth_tests::require_guest();
    assert_eq!(1 + 1, 3, "this guest test fails on purpose");
}
