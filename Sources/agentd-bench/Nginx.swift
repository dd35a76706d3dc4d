import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Debian's nginx as a reverse proxy in front of the emulators: the reference hop agentd's figures
/// are divided by. One server per emulator, each on a Unix socket (as agentd's clients connect),
/// with a keep-alive upstream and `proxy_buffering off`, so each event the emulator writes is
/// passed on as it arrives, as agentd passes it on.
final class ReferenceProxy {
    let child: Child
    /// Upstream port → the socket nginx listens on for it.
    let socketPaths: [Int: String]

    static let executable = "/usr/sbin/nginx"
    static let describe = "(Debian's, a worker per core, keep-alive upstream, `proxy_buffering off`)"

    init(upstreamPorts: [Int], directory: String, socketDirectory: String) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw BenchError("\(Self.executable) is missing: `make bench` installs Debian's nginx")
        }
        let prefix = "\(directory)/nginx"
        try FileManager.default.createDirectory(atPath: "\(prefix)/temp", withIntermediateDirectories: true)
        var paths: [Int: String] = [:]
        var servers = ""
        for port in upstreamPorts {
            let socket = "\(socketDirectory)/nginx-\(port).sock"
            paths[port] = socket
            servers += """
                    upstream emulator_\(port) { server 127.0.0.1:\(port); keepalive 1024; }
                    server {
                        listen unix:\(socket) backlog=4096;
                        location / {
                            proxy_pass http://emulator_\(port);
                            proxy_http_version 1.1;
                            proxy_set_header Connection "";
                            proxy_buffering off;
                            proxy_read_timeout 10m;
                        }
                    }

                """
        }
        // As many workers as cores, as `worker_processes auto` does: agentd has two event loops
        // and its curl thread on the same two cores.
        let configuration = """
            daemon off;
            master_process on;
            worker_processes auto;
            worker_rlimit_nofile 65536;
            pid \(prefix)/nginx.pid;
            error_log \(prefix)/error.log warn;
            events { worker_connections 30000; }
            http {
                access_log off;
                client_body_temp_path \(prefix)/temp/body;
                proxy_temp_path \(prefix)/temp/proxy;
                fastcgi_temp_path \(prefix)/temp/fastcgi;
                uwsgi_temp_path \(prefix)/temp/uwsgi;
                scgi_temp_path \(prefix)/temp/scgi;
                keepalive_requests 1000000;
                keepalive_timeout 10m;
            \(servers)}

            """
        try configuration.write(toFile: "\(prefix)/nginx.conf", atomically: false, encoding: .utf8)
        child = try Child(
            name: "nginx", executable: Self.executable, arguments: ["-p", prefix, "-c", "\(prefix)/nginx.conf"],
            environment: [:], directory: directory)
        socketPaths = paths
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while !paths.values.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
            guard monotonicNanoseconds() < deadline, child.process.isRunning else {
                throw BenchError(
                    "nginx did not start:\n\(child.log)\n\((try? String(contentsOfFile: "\(prefix)/error.log", encoding: .utf8)) ?? "")"
                )
            }
            usleep(10_000)
        }
        progress("nginx \(nginxVersion) in front of ports \(upstreamPorts.map(String.init).joined(separator: ", "))")
    }

    /// The master and its workers: the proxy's cost is all of them.
    private var pids: [Int32] { [child.pid] + ProcessFigures.children(of: child.pid) }

    var cpuSeconds: Double { pids.reduce(0) { $0 + ProcessFigures.cpuSeconds(pid: $1) } }

    var residentBytes: Double { pids.reduce(0) { $0 + ProcessFigures.residentBytes(pid: $1) } }

    private var nginxVersion: String {
        let version = Process()
        version.executableURL = URL(fileURLWithPath: Self.executable)
        version.arguments = ["-v"]
        let pipe = Pipe()
        version.standardError = pipe
        guard (try? version.run()) != nil else { return "" }
        version.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return text.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
    }
}
