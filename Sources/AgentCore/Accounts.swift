#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Users and groups by name and by id, through the reentrant `get*_r` calls: they run on
/// whatever thread a connection's task is on, where `getpwuid` and friends would share one
/// static buffer.
public enum Accounts {
    /// Whether users and groups named in configuration exist, so that a typo is an error at
    /// load time rather than a socket nobody can reach.
    static func userExists(_ name: String) -> Bool {
        lookup { buffer, size in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwnam_r(name, &entry, buffer, size, &result)
            return (status, result.map { _ in () })
        } != nil
    }

    static func groupExists(_ name: String) -> Bool {
        lookup { buffer, size in
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrnam_r(name, &entry, buffer, size, &result)
            return (status, result.map { _ in () })
        } != nil
    }

    public static func userName(of uid: uid_t) -> String? {
        lookup { buffer, size in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwuid_r(uid, &entry, buffer, size, &result)
            return (status, result.map { String(cString: $0.pointee.pw_name) })
        }
    }

    public static func groupName(of gid: gid_t) -> String? {
        lookup { buffer, size in
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrgid_r(gid, &entry, buffer, size, &result)
            return (status, result.map { String(cString: $0.pointee.gr_name) })
        }
    }

    /// Runs a reentrant `get*_r` call, growing its buffer while it reports ERANGE (large
    /// groups need more than the usual suggestion).
    private static func lookup<Value>(
        _ call: (UnsafeMutablePointer<CChar>, Int) -> (status: Int32, value: Value?)
    ) -> Value? {
        var size = 16 * 1024
        while size <= 16 << 20 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let (status, value) = call(buffer, size)
            if status == ERANGE {
                size *= 4
                continue
            }
            return status == 0 ? value : nil
        }
        return nil
    }
}
