//! Parses the summary line libtest prints at the end of every test binary
//! (`test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`)
//! so the VM runner can add up the results of all guest test binaries.

/// Counts from one or more libtest summary lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl TestCounts {
    /// Parses one line; `None` when it is not a libtest summary line.
    pub fn parse_line(line: &str) -> Option<TestCounts> {
        let rest = line.trim().strip_prefix("test result: ")?;
        let (_, counts) = rest.split_once(". ")?;
        let mut out = TestCounts::default();
        for part in counts.split(';') {
            let mut words = part.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => out.passed = n,
                "failed" => out.failed = n,
                "ignored" => out.ignored = n,
                _ => {}
            }
        }
        Some(out)
    }

    pub fn add(&mut self, other: TestCounts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

#[cfg(test)]
mod tests {
    use super::TestCounts;

    #[test]
    fn parses_ok_and_failed_summaries() {
        let ok = "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.01s";
        assert_eq!(
            TestCounts::parse_line(ok),
            Some(TestCounts {
                passed: 3,
                failed: 0,
                ignored: 1
            })
        );
        let failed = "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s";
        assert_eq!(
            TestCounts::parse_line(failed),
            Some(TestCounts {
                passed: 0,
                failed: 1,
                ignored: 0
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(TestCounts::parse_line("test foo ... ok"), None);
        assert_eq!(TestCounts::parse_line("running 3 tests"), None);
    }

    #[test]
    fn adds_up() {
        let mut total = TestCounts::default();
        total.add(TestCounts {
            passed: 2,
            failed: 1,
            ignored: 0,
        });
        total.add(TestCounts {
            passed: 5,
            failed: 0,
            ignored: 3,
        });
        assert_eq!(
            total,
            TestCounts {
                passed: 7,
                failed: 1,
                ignored: 3
            }
        );
    }
}
