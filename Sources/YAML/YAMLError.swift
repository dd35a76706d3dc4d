/// Why a document was rejected, and where.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// libyaml could not scan or parse the text.
        case syntax
        case invalidUTF8
        case tabIndentation
        case duplicateKey
        case multipleDocuments
        /// Aliases would expand to more nodes than allowed ("billion laughs").
        case aliasExpansion
        case undefinedAlias
        case tooDeep
    }

    public var code: Code
    public var mark: Mark
    public var message: String

    public init(_ code: Code, at mark: Mark, _ message: String) {
        self.code = code
        self.mark = mark
        self.message = message
    }

    public var description: String { "\(mark): \(message)" }
}
