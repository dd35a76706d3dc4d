#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether users and groups named in configuration exist, so that a typo is an error at load
/// time rather than a socket nobody can reach.
enum Accounts {
    static func userExists(_ name: String) -> Bool {
        lookup { buffer, size in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let status = getpwnam_r(name, &entry, buffer, size, &result)
            return (status, result != nil)
        }
    }

    static func groupExists(_ name: String) -> Bool {
        lookup { buffer, size in
            var entry = group()
            var result: UnsafeMutablePointer<group>?
            let status = getgrnam_r(name, &entry, buffer, size, &result)
            return (status, result != nil)
        }
    }

    /// Runs a reentrant `get*nam_r` call, growing its buffer while it reports ERANGE (large
    /// groups need more than the usual suggestion).
    private static func lookup(
        _ call: (UnsafeMutablePointer<CChar>, Int) -> (status: Int32, found: Bool)
    ) -> Bool {
        var size = 16 * 1024
        while size <= 16 << 20 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let (status, found) = call(buffer, size)
            if status == ERANGE {
                size *= 4
                continue
            }
            return status == 0 && found
        }
        return false
    }
}
