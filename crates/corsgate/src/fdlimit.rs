//! The process's file-descriptor limit: raised at start-up from its soft
//! value (often 1024) to its hard value, as nginx's `worker_rlimit_nofile`
//! does, so that each listener's `limits.maxConnections`, not the
//! descriptor limit, is what refuses connections. A limit that cannot be
//! raised is logged and left as it is.

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; the limit in force.
pub fn raise() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and reads
    // nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(
                soft = lim.rlim_cur,
                hard = lim.rlim_max,
                "cannot raise the file-descriptor limit"
            );
        }
    }
    Some(lim.rlim_cur)
}
