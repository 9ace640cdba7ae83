//! Memory and CPU of a process on this machine, from Linux's `/proc`: the
//! server's, when the operator names its pid, and the load test's own, which
//! says whether the figures are the server's limit or ours.

/// Linux reports CPU times to user space in ticks of USER_HZ, which it fixes
/// at 100 a second on the architectures we run on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS")
}

/// User plus system CPU seconds of `pid`, or of this process for `"self"`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_ticks(&stat).map(|ticks| ticks as f64 / TICKS_PER_SECOND)
}

/// CPU `seconds` used over `wall` as percent of one core, to one decimal.
pub fn percent_of_a_core(seconds: f64, wall: std::time::Duration) -> f64 {
    crate::report::round(seconds * 100.0 / wall.as_secs_f64().max(1e-9), 1)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime: fields 14 and 15, counted after the command name, which
/// is in parentheses and may itself hold spaces.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_status() {
        let status = "Name:\tchatroom\nVmHWM:\t  9000 kB\nVmRSS:\t  8123 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(8123));
    }

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        let stat = "42 (tokio worker 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(cpu_seconds("self").is_some());
    }
}
