import JSON

/// One failure of a request body against its schema, shaped like a pydantic error in a FastAPI 422.
struct ValidationIssue: Sendable, Equatable, CustomStringConvertible {
    /// pydantic's error type: `extra_forbidden`, `missing`, `string_type`, `less_than_equal`…
    var type: String
    /// Where: `["body", "messages", 0, "user", "name"]`.
    var loc: [JSONValue]
    var msg: String
    var input: JSONValue
    var ctx: JSONObject?

    var json: JSONValue {
        var object: JSONObject = ["type": .string(type), "loc": .array(loc), "msg": .string(msg), "input": input]
        if let ctx { object["ctx"] = .object(ctx) }
        return .object(object)
    }

    var description: String { "\(type) at \(JSONValue.array(loc).jsonText): \(msg)" }
}

/// The subset of JSON Schema (OpenAPI 3.1 flavour) that Mistral's request schemas use, compiled once.
///
/// Errors follow pydantic's conventions, which is what Mistral's FastAPI front returns:
/// a nullable `anyOf [X, null]` reports X's errors at the field itself, a discriminated union adds
/// the tag to `loc`, extra fields come after the declared ones.
final class SchemaSet: Sendable {
    let schemas: [String: Schema]
    /// The named schemas by the index a `$ref` compiles to, so following one costs no lookup by name.
    private let table: [Schema]

    /// The schemas of `mistralRequestSchemasJSON`, parsed on first use.
    static let mistral: SchemaSet = {
        do {
            return try SchemaSet(document: JSONParser.parse(mistralRequestSchemasJSON))
        } catch {
            fatalError("embedded Mistral schemas are not valid JSON: \(error)")
        }
    }()

    /// `document` is the extraction script's output: `{"schemas": {name: schema}}`.
    init(document: JSONValue) {
        let members = document["schemas"]?.objectValue?.members ?? []
        var indices: [String: Int] = [:]
        for (index, member) in members.enumerated() { indices[member.key] = index }
        table = members.map { Schema($0.value, name: $0.key, indices: indices) }
        schemas = Dictionary(zip(members.map(\.key), table)) { _, last in last }
    }

    /// Names of the schemas held.
    var names: [String] { schemas.keys.sorted() }

    /// Validates `value` against the named schema; `loc` starts with `"body"` as in FastAPI.
    func validate(_ value: JSONValue, against name: String) -> [ValidationIssue] {
        guard let schema = schemas[name] else { return [] }
        var path: [JSONValue] = ["body"]
        var issues: [ValidationIssue] = []
        validate(value, schema, &path, &issues)
        return issues
    }

    private func resolve(_ schema: Schema) -> Schema {
        var current = schema
        for _ in 0...table.count {
            guard let reference = current.reference else { return current }
            current = table[reference]
        }
        preconditionFailure("the request schemas have a cycle of $refs")
    }

    private func validate(
        _ value: JSONValue, _ schema: Schema, _ path: inout [JSONValue], _ issues: inout [ValidationIssue]
    ) {
        let schema = resolve(schema)
        for part in schema.allOf { validate(value, part, &path, &issues) }
        if !schema.alternatives.isEmpty {
            validateUnion(value, schema, &path, &issues)
            return
        }
        if let types = schema.types {
            guard types.contains(where: { $0.matches(value) }) else {
                issues.append(typeIssue(value, expected: types[0], schema: schema, path: path))
                return
            }
        }
        if let constant = schema.constant, value != constant {
            issues.append(
                issue(
                    "literal_error", "Input should be \(Self.pythonLiteral(constant))", value, path,
                    ctx: ["expected": .string(Self.pythonLiteral(constant))]))
            return
        }
        if let choices = schema.enumeration, !choices.contains(value) {
            let expected = Self.pythonList(choices)
            issues.append(
                issue(
                    choices.count == 1 ? "literal_error" : "enum", "Input should be \(expected)", value, path,
                    ctx: ["expected": .string(expected)]))
            return
        }
        switch value {
        case .int, .double: checkBounds(value, schema, path, &issues)
        case .string(let string): checkString(string, schema, path, &issues)
        case .array(let elements):
            if let minItems = schema.minItems, elements.count < minItems {
                issues.append(
                    issue(
                        "too_short",
                        "List should have at least \(minItems) item\(minItems == 1 ? "" : "s") after validation, not \(elements.count)",
                        value, path,
                        ctx: [
                            "field_type": "List", "min_length": .int(Int64(minItems)),
                            "actual_length": .int(Int64(elements.count)),
                        ]))
            }
            if let items = schema.items {
                for (position, element) in elements.enumerated() {
                    path.append(.int(Int64(position)))
                    validate(element, items, &path, &issues)
                    path.removeLast()
                }
            }
        case .object(let object): validateObject(object, value, schema, &path, &issues)
        case .null, .bool: break
        }
    }

    private func validateObject(
        _ object: JSONObject, _ value: JSONValue, _ schema: Schema, _ path: inout [JSONValue],
        _ issues: inout [ValidationIssue]
    ) {
        for property in schema.properties {
            if let member = object[property.name] {
                path.append(.string(property.name))
                validate(member, property.schema, &path, &issues)
                path.removeLast()
            } else if property.isRequired {
                path.append(.string(property.name))
                issues.append(issue("missing", "Field required", value, path))
                path.removeLast()
            }
        }
        for name in schema.requiredUndeclared where object[name] == nil {
            path.append(.string(name))
            issues.append(issue("missing", "Field required", value, path))
            path.removeLast()
        }
        guard !schema.allowsAdditionalProperties else { return }
        for member in object where !schema.declares(member.key) {
            path.append(.string(member.key))
            issues.append(issue("extra_forbidden", "Extra inputs are not permitted", member.value, path))
            path.removeLast()
        }
    }

    private func validateUnion(
        _ value: JSONValue, _ schema: Schema, _ path: inout [JSONValue], _ issues: inout [ValidationIssue]
    ) {
        if let discriminator = schema.discriminator {
            validateDiscriminated(value, discriminator, &path, &issues)
            return
        }
        // Optional[X]: pydantic reports X's errors at the field itself.
        let nonNull = schema.nonNullAlternatives
        if schema.isNullable {
            if value == .null { return }
            if nonNull.count == 1 {
                validate(value, nonNull[0], &path, &issues)
                return
            }
        }
        if let unknownTag = unknownTag(value, among: nonNull, at: path) {
            issues.append(unknownTag)
            return
        }
        var best: (score: Int, issues: [ValidationIssue])?
        for alternative in nonNull {
            var attempt: [ValidationIssue] = []
            validate(value, alternative, &path, &attempt)
            if attempt.isEmpty { return }
            // Report the branch the input most plausibly meant: one whose `type` constant or JSON
            // type matches, then the one with the fewest complaints.
            let resolved = resolve(alternative)
            var score = attempt.count
            if !resolved.acceptsJSONType(of: value) { score += 10_000 }
            if case .object(let object) = value, let tag = object["type"], resolved.typeTag == tag {
                score -= 5_000
            }
            if best == nil || score < best!.score { best = (score, attempt) }
        }
        issues.append(contentsOf: best?.issues ?? [])
    }

    /// A `type` tag that no branch of a union of tagged objects declares: reported once, as a
    /// discriminated union reports it, rather than as every branch's complaints about the tag.
    /// Mistral's chunk and entry unions (`MessageInputContentChunks`, `InputEntries`) are such
    /// unions without a declared discriminator.
    private func unknownTag(_ value: JSONValue, among alternatives: [Schema], at path: [JSONValue]) -> ValidationIssue?
    {
        guard case .object(let object) = value, case .string(let tag)? = object["type"] else { return nil }
        var tags: [String] = []
        for alternative in alternatives {
            guard case .string(let declared)? = resolve(alternative).typeTag else { return nil }
            if declared == tag { return nil }
            tags.append(declared)
        }
        return Self.tagIssue(shown: tag, property: "type", expected: tags, value: value, path: path)
    }

    private func validateDiscriminated(
        _ value: JSONValue, _ discriminator: Schema.Discriminator, _ path: inout [JSONValue],
        _ issues: inout [ValidationIssue]
    ) {
        guard case .object(let object) = value else {
            issues.append(
                issue(
                    "model_attributes_type", "Input should be a valid dictionary or object to extract fields from",
                    value, path))
            return
        }
        let property = discriminator.propertyName
        guard let tagValue = object[property] else {
            issues.append(
                issue(
                    "union_tag_not_found", "Unable to extract tag using discriminator '\(property)'", value, path,
                    ctx: ["discriminator": .string("'\(property)'")]))
            return
        }
        guard case .string(let tag) = tagValue, let target = discriminator.mapping.first(where: { $0.tag == tag })
        else {
            issues.append(
                Self.tagIssue(
                    shown: tagValue.stringValue ?? tagValue.jsonText, property: property,
                    expected: discriminator.mapping.map(\.tag), value: value, path: path))
            return
        }
        path.append(.string(tag))
        validate(value, target.schema, &path, &issues)
        path.removeLast()
    }

    /// pydantic's `union_tag_invalid`.
    private static func tagIssue(
        shown: String, property: String, expected: [String], value: JSONValue, path: [JSONValue]
    ) -> ValidationIssue {
        let expected = expected.map { "'\($0)'" }.joined(separator: ", ")
        return ValidationIssue(
            type: "union_tag_invalid",
            loc: path,
            msg: "Input tag '\(shown)' found using '\(property)' does not match any of the expected tags: \(expected)",
            input: value,
            ctx: [
                "discriminator": .string("'\(property)'"), "tag": .string(shown), "expected_tags": .string(expected),
            ])
    }

    private func checkBounds(
        _ value: JSONValue, _ schema: Schema, _ path: [JSONValue], _ issues: inout [ValidationIssue]
    ) {
        guard let number = value.doubleValue else { return }
        if let bound = schema.minimum, let limit = bound.doubleValue, number < limit {
            issues.append(
                issue(
                    "greater_than_equal", "Input should be greater than or equal to \(bound.jsonText)", value, path,
                    ctx: ["ge": bound]))
        }
        if let bound = schema.exclusiveMinimum, let limit = bound.doubleValue, number <= limit {
            issues.append(
                issue("greater_than", "Input should be greater than \(bound.jsonText)", value, path, ctx: ["gt": bound])
            )
        }
        if let bound = schema.maximum, let limit = bound.doubleValue, number > limit {
            issues.append(
                issue(
                    "less_than_equal", "Input should be less than or equal to \(bound.jsonText)", value, path,
                    ctx: ["le": bound]))
        }
        if let bound = schema.exclusiveMaximum, let limit = bound.doubleValue, number >= limit {
            issues.append(
                issue("less_than", "Input should be less than \(bound.jsonText)", value, path, ctx: ["lt": bound]))
        }
    }

    private func checkString(_ string: String, _ schema: Schema, _ path: [JSONValue], _ issues: inout [ValidationIssue])
    {
        let value = JSONValue.string(string)
        if let minLength = schema.minLength, string.count < minLength {
            issues.append(
                issue(
                    "string_too_short",
                    "String should have at least \(minLength) character\(minLength == 1 ? "" : "s")", value, path,
                    ctx: ["min_length": .int(Int64(minLength))]))
        }
        if let maxLength = schema.maxLength, string.count > maxLength {
            issues.append(
                issue(
                    "string_too_long", "String should have at most \(maxLength) character\(maxLength == 1 ? "" : "s")",
                    value, path,
                    ctx: ["max_length": .int(Int64(maxLength))]))
        }
        switch schema.format {
        case "uuid" where !Self.isUUID(string):
            issues.append(
                issue("uuid_parsing", "Input should be a valid UUID, invalid character or length", value, path))
        case "date-time" where !Self.looksLikeDateTime(string):
            issues.append(
                issue(
                    "datetime_from_date_parsing", "Input should be a valid datetime or date, invalid character", value,
                    path))
        default: break
        }
    }

    private func typeIssue(_ value: JSONValue, expected: Schema.JSONType, schema: Schema, path: [JSONValue])
        -> ValidationIssue
    {
        switch expected {
        case .string: return issue("string_type", "Input should be a valid string", value, path)
        case .integer:
            if case .double = value {
                return issue(
                    "int_from_float", "Input should be a valid integer, got a number with a fractional part", value,
                    path)
            }
            return issue("int_type", "Input should be a valid integer", value, path)
        case .number: return issue("float_type", "Input should be a valid number", value, path)
        case .boolean: return issue("bool_type", "Input should be a valid boolean", value, path)
        case .array: return issue("list_type", "Input should be a valid list", value, path)
        case .null: return issue("none_required", "Input should be None", value, path)
        case .object:
            if let name = schema.name, !schema.properties.isEmpty {
                return issue(
                    "model_type", "Input should be a valid dictionary or instance of \(name)", value, path,
                    ctx: ["class_name": .string(name)])
            }
            return issue("dict_type", "Input should be a valid dictionary", value, path)
        }
    }

    private func issue(_ type: String, _ msg: String, _ input: JSONValue, _ path: [JSONValue], ctx: JSONObject? = nil)
        -> ValidationIssue
    {
        ValidationIssue(type: type, loc: path, msg: msg, input: input, ctx: ctx)
    }

    /// Python's repr of a literal, as pydantic prints expected values: `'auto'`, `False`, `1.5`.
    static func pythonLiteral(_ value: JSONValue) -> String {
        switch value {
        case .string(let string): "'\(string)'"
        case .bool(let flag): flag ? "True" : "False"
        case .null: "None"
        default: value.jsonText
        }
    }

    /// pydantic's enumeration of choices: `'a', 'b' or 'c'`.
    static func pythonList(_ values: [JSONValue]) -> String {
        let shown = values.map(pythonLiteral)
        guard shown.count > 1 else { return shown.first ?? "" }
        return shown.dropLast().joined(separator: ", ") + " or " + shown.last!
    }

    static func isUUID(_ string: String) -> Bool {
        let hex = string.utf8.filter { $0 != UInt8(ascii: "-") }
        let dashed =
            string.utf8.count == 36
            && [8, 13, 18, 23].allSatisfy {
                string.utf8[string.utf8.index(string.utf8.startIndex, offsetBy: $0)] == UInt8(ascii: "-")
            }
        return (dashed || string.utf8.count == 32) && hex.count == 32 && hex.allSatisfy(\.isHexDigit)
    }

    static func looksLikeDateTime(_ string: String) -> Bool {
        // YYYY-MM-DD, optionally followed by a time: enough to refuse what pydantic refuses outright.
        let bytes = Array(string.utf8)
        guard bytes.count >= 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") else { return false }
        return [0, 1, 2, 3, 5, 6, 8, 9].allSatisfy { bytes[$0].isDigit }
    }
}

private extension UInt8 {
    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    var isHexDigit: Bool {
        isDigit || (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "f"))
            || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "F"))
    }
}

/// One compiled schema node, immutable and shared: validating passes references, never copies.
final class Schema: Sendable {
    struct Discriminator: Sendable {
        var propertyName: String
        var mapping: [(tag: String, schema: Schema)]
    }

    struct Property: Sendable {
        var name: String
        var schema: Schema
        var isRequired: Bool
    }

    /// The JSON Schema `type` names, matched without comparing strings.
    enum JSONType: String, Sendable {
        case null, boolean, integer, number, string, array, object

        func matches(_ value: JSONValue) -> Bool {
            switch (self, value) {
            case (.null, .null), (.boolean, .bool), (.string, .string), (.array, .array), (.object, .object): true
            case (.number, .int), (.number, .double): true
            case (.integer, .int): true
            case (.integer, .double(let number)): number.rounded() == number
            default: false
            }
        }
    }

    let name: String?
    /// The `$ref` target's index in the owning `SchemaSet`; nil for no reference or an unknown one.
    let reference: Int?
    let types: [JSONType]?
    let constant: JSONValue?
    let enumeration: [JSONValue]?
    let minimum: JSONValue?
    let maximum: JSONValue?
    let exclusiveMinimum: JSONValue?
    let exclusiveMaximum: JSONValue?
    let minLength: Int?
    let maxLength: Int?
    let minItems: Int?
    let format: String?
    let properties: [Property]
    /// Required names the schema does not declare as properties, reported after the declared ones.
    let requiredUndeclared: [String]
    let allowsAdditionalProperties: Bool
    let items: Schema?
    let alternatives: [Schema]
    /// `alternatives` without the `{"type": "null"}` branches, and whether there were any.
    let nonNullAlternatives: [Schema]
    let isNullable: Bool
    let allOf: [Schema]
    let discriminator: Discriminator?
    /// The constant of the `type` property: the tag a union of tagged objects tells branches by.
    let typeTag: JSONValue?

    /// `indices` maps the owning set's schema names to the indices `$ref`s compile to.
    init(_ json: JSONValue, name: String? = nil, indices: [String: Int]) {
        let object = json.objectValue ?? [:]
        self.name = name
        reference = object["$ref"]?.stringValue.flatMap { indices[Self.schemaName($0)] }
        switch object["type"] {
        case .string(let type)?: types = [type].compactMap(JSONType.init(rawValue:))
        case .array(let list)?: types = list.compactMap { $0.stringValue.flatMap(JSONType.init(rawValue:)) }
        default: types = nil
        }
        constant = object["const"]
        enumeration = object["enum"]?.arrayValue
        minimum = object["minimum"]
        maximum = object["maximum"]
        exclusiveMinimum = object["exclusiveMinimum"]
        exclusiveMaximum = object["exclusiveMaximum"]
        minLength = object["minLength"]?.intValue.map(Int.init)
        maxLength = object["maxLength"]?.intValue.map(Int.init)
        minItems = object["minItems"]?.intValue.map(Int.init)
        format = object["format"]?.stringValue
        let required = object["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        properties = (object["properties"]?.objectValue ?? [:]).map { member in
            Property(
                name: member.key, schema: Schema(member.value, indices: indices),
                isRequired: required.contains(member.key))
        }
        let declared = Set(properties.map(\.name))
        requiredUndeclared = required.filter { !declared.contains($0) }
        allowsAdditionalProperties = object["additionalProperties"] != .bool(false)
        items = object["items"].map { Schema($0, indices: indices) }
        alternatives = (object["anyOf"]?.arrayValue ?? object["oneOf"]?.arrayValue ?? []).map {
            Schema($0, indices: indices)
        }
        nonNullAlternatives = alternatives.filter { $0.types != [.null] }
        isNullable = nonNullAlternatives.count < alternatives.count
        allOf = (object["allOf"]?.arrayValue ?? []).map { Schema($0, indices: indices) }
        if let discriminatorObject = object["discriminator"]?.objectValue,
            let propertyName = discriminatorObject["propertyName"]?.stringValue
        {
            let mapping = (discriminatorObject["mapping"]?.objectValue ?? [:]).compactMap { member in
                member.value.stringValue.map {
                    (tag: member.key, schema: Schema(["$ref": .string($0)], indices: indices))
                }
            }
            discriminator = Discriminator(propertyName: propertyName, mapping: mapping)
        } else {
            discriminator = nil
        }
        typeTag = properties.first { $0.name == "type" }?.schema.constant
    }

    func declares(_ property: String) -> Bool {
        properties.contains { $0.name == property }
    }

    static func schemaName(_ reference: String) -> String {
        reference.split(separator: "/").last.map(String.init) ?? reference
    }

    func acceptsJSONType(of value: JSONValue) -> Bool {
        guard let types else { return true }
        return types.contains { $0.matches(value) }
    }
}
