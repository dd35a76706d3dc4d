import Basics
import Foundation

/// One `GET` on 127.0.0.1, `Connection: close`: the status line and headers, and the body.
func httpGet(port: Int, path: String) throws -> (head: String, body: String) {
    guard let response = Loopback.get(port: port, path: path) else {
        throw TestFailure("cannot connect to 127.0.0.1:\(port)")
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP head in: \(text)") }
    return (String(text[..<split.lowerBound]), String(text[split.upperBound...]))
}
