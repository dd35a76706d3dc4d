import JSON

/// Turns an exec tool's argv template and one call's arguments into the argv that is run.
///
/// An element that is exactly `"{param}"` becomes that argument, whole: a string as it is, any
/// other JSON value as its compact JSON text. Nothing is split, quoted or handed to a shell, so
/// an argument such as `"; rm -rf /"` reaches the tool as one literal argv element. Elements
/// that merely contain braces (`"--format={x}"`, `"{}"`) are left as they are: a half-
/// substituted element would be the start of a quoting language, and argv needs none.
enum ArgvTemplate {
    /// Why a call's arguments cannot fill the template; what the model is told.
    struct SubstitutionError: Error, Hashable, CustomStringConvertible {
        enum Code: Hashable {
            /// The template names the parameter and the call has no such argument.
            case missingArgument
            /// argv elements are C strings: a NUL would silently cut the argument short.
            case argumentContainsNUL
        }

        var code: Code
        var name: String
        var argvIndex: Int

        var description: String {
            switch code {
            case .missingArgument:
                return "missing argument \"\(name)\" (exec[\(argvIndex)] is \"{\(name)}\")"
            case .argumentContainsNUL:
                return "argument \"\(name)\" contains a NUL character, which an argv element cannot carry"
            }
        }
    }

    /// The parameter an argv element stands for, when it is exactly `"{name}"` with a
    /// non-empty name free of braces.
    static func placeholderName(_ element: String) -> String? {
        guard element.hasPrefix("{"), element.hasSuffix("}"), element.count > 2 else { return nil }
        let name = element.dropFirst().dropLast()
        guard !name.contains("{"), !name.contains("}") else { return nil }
        return String(name)
    }

    /// The argv to run: the executable stays as written, every placeholder after it is replaced.
    static func substitute(_ template: [String], arguments: JSONObject) -> Result<[String], SubstitutionError> {
        var argv: [String] = []
        argv.reserveCapacity(template.count)
        for (index, element) in template.enumerated() {
            guard index > 0, let name = placeholderName(element) else {
                argv.append(element)
                continue
            }
            let text: String
            switch arguments[name] {
            case .string(let string)?: text = string
            case let value?: text = value.jsonText
            case nil: return .failure(SubstitutionError(code: .missingArgument, name: name, argvIndex: index))
            }
            guard !text.utf8.contains(0) else {
                return .failure(SubstitutionError(code: .argumentContainsNUL, name: name, argvIndex: index))
            }
            argv.append(text)
        }
        return .success(argv)
    }
}
