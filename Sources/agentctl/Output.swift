import Glibc
import JSON

/// Where agentctl writes: unbuffered, so streamed text reaches the reader as it arrives.
enum Output {
    static func write(_ text: String, to descriptor: Int32 = STDOUT_FILENO) {
        write(bytes: Array(text.utf8), to: descriptor)
    }

    static func write(bytes: [UInt8], to descriptor: Int32 = STDOUT_FILENO) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    static func line(_ text: String) { write(text + "\n") }

    static func error(_ text: String) { write(text + "\n", to: STDERR_FILENO) }

    /// A line exactly as the daemon sent it.
    static func raw(_ line: [UInt8]) { write(bytes: line + [UInt8(ascii: "\n")]) }

    /// `agentctl: MESSAGE` on stderr, red on a terminal.
    static func failure(_ message: String) {
        error(Style(descriptor: STDERR_FILENO).red("agentctl: \(message)"))
    }
}

/// ANSI styling, only for a terminal and only when NO_COLOR is unset (https://no-color.org).
struct Style {
    let enabled: Bool

    init(descriptor: Int32 = STDOUT_FILENO) {
        enabled = isatty(descriptor) == 1 && getenv("NO_COLOR") == nil
    }

    func bold(_ text: String) -> String { wrap(text, "1") }
    func red(_ text: String) -> String { wrap(text, "31") }
    func green(_ text: String) -> String { wrap(text, "32") }
    func yellow(_ text: String) -> String { wrap(text, "33") }
    func dim(_ text: String) -> String { wrap(text, "2") }

    private func wrap(_ text: String, _ code: String) -> String {
        enabled && !text.isEmpty ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }
}

/// A table with columns aligned on the widest cell; styling is applied after padding so
/// escape codes never upset the alignment.
struct Table {
    var header: [String]
    var rows: [[String]] = []
    /// Styles a cell by (column, text); the header is always bold.
    var styleCell: (Int, String) -> String = { $1 }

    func render(style: Style) -> String {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        func format(_ cells: [String], _ styled: (Int, String) -> String) -> String {
            cells.enumerated().map { column, cell in
                let padding =
                    column == cells.count - 1 ? "" : String(repeating: " ", count: widths[column] - cell.count)
                return styled(column, cell) + padding
            }.joined(separator: "  ")
        }
        var lines = [format(header) { style.bold($1) }]
        lines += rows.map { format($0, styleCell) }
        return lines.joined(separator: "\n")
    }
}

extension JSONValue {
    /// A cell's text: strings bare, null as "-", anything else as JSON.
    var cellText: String {
        switch self {
        case .string(let string): string
        case .null: "-"
        case .double(let double) where double == double.rounded() && abs(double) < 1e15: String(Int64(double))
        default: jsonText
        }
    }
}
