import Glibc

/// The terminal on standard input in the mode the interactive chat needs: no line buffering,
/// no echo and no signals from Ctrl-C, so every key reaches agentctl as bytes, also while a
/// reply streams (Ctrl-C then cancels the reply rather than killing agentctl). Output
/// processing stays on, so "\n" still starts a new line. `restore` puts back what was there.
///
/// A small editor of our own rather than libedit or readline: the chat needs one line with
/// the usual keys and a history, and a C binding would add a system library for that alone.
final class RawTerminal {
    private var saved = termios()
    private var active = false

    init?() {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return nil }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON)
        // One byte at a time, waiting as long as it takes.
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0 else { return nil }
        active = true
    }

    func restore() {
        guard active else { return }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
        active = false
    }

    deinit { restore() }
}

/// Reads one line from a raw terminal with the editing keys of a shell: arrows, Home/End,
/// Ctrl-A/E/B/F, Backspace/Delete, Ctrl-U/K/W, and Up/Down through the lines entered so far.
/// The prompt and the echo go to stderr, so stdout carries nothing but replies.
struct LineEditor {
    enum Outcome: Equatable {
        case line(String)
        /// Ctrl-D on an empty line.
        case end
    }

    let prompt: String
    private var history: [[Character]] = []

    init(prompt: String) { self.prompt = prompt }

    mutating func read() -> Outcome {
        var line: [Character] = []
        var cursor = 0
        var recalled = history.count
        var pending: [UInt8] = []
        redraw(line, cursor)
        while let byte = Self.readByte() {
            switch byte {
            case 0x0D, 0x0A:
                Output.write("\r\n", to: STDERR_FILENO)
                if !line.isEmpty, history.last != line { history.append(line) }
                return .line(String(line))
            case 0x03:
                // Ctrl-C drops the line being typed, as a shell does; it never leaves.
                Output.write("^C\r\n", to: STDERR_FILENO)
                line = []
                cursor = 0
                recalled = history.count
            case 0x04:
                if line.isEmpty {
                    Output.write("\r\n", to: STDERR_FILENO)
                    return .end
                }
                if cursor < line.count { line.remove(at: cursor) }
            case 0x7F, 0x08:
                if cursor > 0 {
                    cursor -= 1
                    line.remove(at: cursor)
                }
            case 0x01: cursor = 0
            case 0x05: cursor = line.count
            case 0x02: cursor = max(0, cursor - 1)
            case 0x06: cursor = min(line.count, cursor + 1)
            case 0x15:
                line.removeSubrange(0..<cursor)
                cursor = 0
            case 0x0B: line.removeSubrange(cursor...)
            case 0x17:
                var start = cursor
                while start > 0, line[start - 1] == " " { start -= 1 }
                while start > 0, line[start - 1] != " " { start -= 1 }
                line.removeSubrange(start..<cursor)
                cursor = start
            case 0x1B:
                switch Self.escapeSequence() {
                case "[D": cursor = max(0, cursor - 1)
                case "[C": cursor = min(line.count, cursor + 1)
                case "[H", "OH", "[1~": cursor = 0
                case "[F", "OF", "[4~": cursor = line.count
                case "[3~": if cursor < line.count { line.remove(at: cursor) }
                case "[A" where recalled > 0:
                    recalled -= 1
                    line = history[recalled]
                    cursor = line.count
                case "[B" where recalled < history.count:
                    recalled += 1
                    line = recalled < history.count ? history[recalled] : []
                    cursor = line.count
                default: break
                }
            case 0x20...:
                // UTF-8: a character is inserted once its last byte has arrived.
                pending.append(byte)
                let lead = pending[0]
                let length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
                guard pending.count >= length else { continue }
                for character in String(decoding: pending, as: UTF8.self) {
                    line.insert(character, at: cursor)
                    cursor += 1
                }
                pending = []
            default: break
            }
            redraw(line, cursor)
        }
        return .end
    }

    /// Rewrites the prompt line and puts the cursor back where it belongs.
    private func redraw(_ line: [Character], _ cursor: Int) {
        var text = "\r\u{1B}[K" + prompt + String(line)
        if cursor < line.count { text += "\u{1B}[\(line.count - cursor)D" }
        Output.write(text, to: STDERR_FILENO)
    }

    /// What follows ESC: `[` or `O`, then up to a final letter or `~`.
    private static func escapeSequence() -> String {
        guard let first = readByte() else { return "" }
        var sequence = String(UnicodeScalar(first))
        guard first == UInt8(ascii: "[") || first == UInt8(ascii: "O") else { return sequence }
        while let byte = readByte() {
            sequence.append(Character(UnicodeScalar(byte)))
            if (0x40...0x7E).contains(byte) { break }
        }
        return sequence
    }

    private static func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let count = Glibc.read(STDIN_FILENO, &byte, 1)
            if count == 1 { return byte }
            if count < 0, errno == EINTR { continue }
            return nil
        }
    }
}
